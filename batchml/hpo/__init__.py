"""Hyper-parameter searches whose trials run as dask tasks on batch GPU workers (Optuna inside)."""

import warnings

from optuna.exceptions import ExperimentalWarning

from batchml.hpo.api import run, run_study
from batchml.hpo.isolation import TrialContext
from batchml.hpo.publish import publish_best
from batchml.hpo.spec import Search, Where

# DaskStorage is our choice of engine, not the user's: its "experimental" warning would
# print on every trial, in every worker (it fires again each time the storage is unpickled).
warnings.filterwarnings(
    "ignore", message="DaskStorage is experimental", category=ExperimentalWarning
)

__all__ = ["Search", "TrialContext", "Where", "publish_best", "run", "run_study"]
