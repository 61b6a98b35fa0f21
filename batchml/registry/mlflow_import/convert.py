"""What an MLflow model folder becomes in batchml: files kept whole, and a torch program if it can.

Every MLflow model folder is stored whole, so nothing MLflow wrote is lost.
A pytorch-flavoured one is also loaded with ``mlflow.pytorch.load_model`` (a
pickled module, or a ``torch.export`` archive for MLflow's 'pt2' format) and
published as a module, so the version carries its state dict and, given an
input, an exported program with a symbolic batch dimension: what
``batchml package build`` turns into ONNX. The input comes from the folder's
input example, else from its tensor or column signature (random normal
values of the declared dtype and shape: enough to trace and validate, and
recorded as synthesised). A model with neither keeps only its state dict, and
packaging it then needs an input example given from Python.

Loading a pickled model runs code stored in the source, as MLflow's own loader
does; MLflow's ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`` refuses it, and the
folder is then imported as files with the reason recorded.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchml.registry.mlflow_import.source import mlflow_module
from batchml.registry.registry_errors import RegistryError

MLFLOW_FOLDER = "mlflow-model"
_SYNTHETIC_BATCH = 8


@dataclass(frozen=True)
class Converted:
    """The arguments of ``Registry.publish`` for one MLflow model folder, and how it got them."""

    model: object  # a torch module, or the folder itself
    input_example: dict[str, Any] | None = None
    variables: dict[str, list[str]] | None = None
    files: dict[str, Path] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)  # recorded in the lineage, and printed


def convert(folder: Path) -> Converted:
    """Publish arguments for the MLflow model in ``folder``."""
    mlflow = mlflow_module()
    try:
        meta = mlflow.models.Model.load(str(folder))
    except (OSError, mlflow.exceptions.MlflowException) as exc:
        raise RegistryError(
            f"{folder} is not an MLflow model folder (no readable MLmodel): {exc}",
            hint="check the version's artifacts in MLflow ('mlflow artifacts list')",
        ) from None
    flavours = sorted(meta.flavors)
    as_files = {"flavours": ", ".join(flavours), "stored": "the MLflow model folder, as files"}
    if "pytorch" not in meta.flavors:
        return Converted(folder, how=as_files)
    if "torch" not in sys.modules and not _importable("torch"):
        return Converted(folder, how={**as_files, "torch": "not converted: torch is not installed"})
    example, variables, where = _example(meta, folder)
    try:
        import mlflow.pytorch

        module = mlflow.pytorch.load_model(str(folder))
    except Exception as exc:  # unpickling can fail in any way (a class that cannot be imported)
        why = f"not converted: mlflow.pytorch.load_model failed: {type(exc).__name__}: {exc}"
        return Converted(folder, how={**as_files, "torch": why[:500]})
    how = {
        "flavours": ", ".join(flavours),
        "stored": f"state dict and program; the MLflow folder under extra/{MLFLOW_FOLDER}",
        "torch": "loaded with mlflow.pytorch.load_model",
        "input_example": where,
    }
    return Converted(module, example, variables, {MLFLOW_FOLDER: folder}, how)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _example(
    meta: Any, folder: Path
) -> tuple[dict[str, Any] | None, dict[str, list[str]] | None, str]:
    """({input: array}, {input: variable names}, where it came from) for the model's forward."""
    import numpy as np

    specs = _tensor_specs(meta)
    try:
        given = meta.load_input_example(str(folder))
    except Exception:  # an unreadable example is treated as none
        given = None
    if given is not None:
        if hasattr(given, "columns"):  # a DataFrame: one float32 matrix, columns as variables
            array = given.to_numpy(dtype=np.float32)
            return (
                {"features": array},
                {"features": [str(c) for c in given.columns]},
                "MLflow input example",
            )
        if isinstance(given, dict):
            return {str(k): np.asarray(v) for k, v in given.items()}, None, "MLflow input example"
        values = list(given) if isinstance(given, (list, tuple)) else [given]
        names = [s[0] for s in specs] if len(specs) == len(values) else _names(len(values))
        return (
            {n: np.asarray(v) for n, v in zip(names, values, strict=True)},
            None,
            "MLflow input example",
        )
    columns = _column_names(meta)
    rng = np.random.default_rng(0)
    if specs:
        arrays = {name: _draw(rng, dtype, shape) for name, dtype, shape in specs}
        return arrays, None, "synthesised from the MLflow tensor signature (normal draws, seed 0)"
    if columns:
        array = rng.standard_normal((_SYNTHETIC_BATCH, len(columns))).astype(np.float32)
        return (
            {"features": array},
            {"features": columns},
            ("synthesised from the MLflow column signature (normal draws, seed 0)"),
        )
    return None, None, "none: the MLflow model has no input example and no signature"


def _names(count: int) -> list[str]:
    return ["input"] if count == 1 else [f"input_{i}" for i in range(count)]


def _tensor_specs(meta: Any) -> list[tuple[str, Any, tuple[int, ...]]]:
    """(name, dtype, shape) of each tensor input whose only free dimension is the batch."""
    inputs = meta.signature.inputs if meta.signature is not None else None
    if inputs is None or not inputs.is_tensor_spec():
        return []
    specs = inputs.inputs
    if any(-1 in spec.shape[1:] or not spec.shape for spec in specs):
        return []
    names = [spec.name for spec in specs]
    if None in names or len(set(names)) != len(names):
        names = _names(len(specs))
    return [(n, spec.type, tuple(spec.shape[1:])) for n, spec in zip(names, specs, strict=True)]


def _column_names(meta: Any) -> list[str]:
    inputs = meta.signature.inputs if meta.signature is not None else None
    if inputs is None or inputs.is_tensor_spec() or not inputs.has_input_names():
        return []
    return [str(n) for n in inputs.input_names()]


def _draw(rng: Any, dtype: Any, shape: tuple[int, ...]) -> Any:
    import numpy as np

    size = (_SYNTHETIC_BATCH, *shape)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(size).astype(dtype)
    return np.zeros(size, dtype=dtype)
