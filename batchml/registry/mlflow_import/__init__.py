"""Moving from MLflow: registered model versions of any MLflow store, as batchml versions.

Needs the ``mlflow`` package (``pip install 'batchml[mlflow]'``), imported
only when an import runs.
"""

from batchml.registry.mlflow_import.importer import ImportReport, import_mlflow

__all__ = ["ImportReport", "import_mlflow"]
