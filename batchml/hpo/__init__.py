"""Hyper-parameter searches whose trials run as dask tasks on batch GPU workers (Optuna inside).

``run_study`` is imported on first use: the commands that only read a study
(``batchml hpo status|best|report``) never load dask-jobqueue, which writes a
default ``~/.config/dask/jobqueue.yaml`` when imported.
"""

import warnings
from typing import TYPE_CHECKING, Any

from optuna.exceptions import ExperimentalWarning

from batchml.hpo.isolation import TrialContext
from batchml.hpo.publish import publish_best

if TYPE_CHECKING:
    from batchml.hpo.study import run_study

# DaskStorage is our choice of engine, not the user's: its "experimental" warning would
# print on every trial, in every worker (it fires again each time the storage is unpickled).
warnings.filterwarnings(
    "ignore", message="DaskStorage is experimental", category=ExperimentalWarning
)

__all__ = ["TrialContext", "publish_best", "run_study"]


def __getattr__(name: str) -> Any:
    if name == "run_study":
        from batchml.hpo.study import run_study

        return run_study
    raise AttributeError(f"module 'batchml.hpo' has no attribute {name!r}")
