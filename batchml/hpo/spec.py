"""A search as two small typed values: what to search (``Search``) and where (``Where``).

Why two: the same search runs on another site by changing ``Where`` alone, and
each part goes only where it is used (the study's bookkeeping reads ``Search``,
the cluster's start-up ``Where``). ``run_study``'s keywords are these fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage

from batchml.hpo.isolation import TrialContext

if TYPE_CHECKING:
    from distributed import Client

Objective = Callable[[Any, TrialContext], Any]


@dataclass(frozen=True)
class Search:
    """What to search, and how the study is kept.

    A ``search_space`` is drawn before the objective runs (it reads
    ``trial.params``); without one the objective calls ``trial.suggest_*`` itself.
    The study is run until ``n_trials`` trials have ended: a search run again
    under the same ``study_name`` and ``storage`` resumes. A trial whose worker
    vanished is retried with its parameters up to ``max_retries`` times.
    ``study_attrs`` are stored on the study (the CLI keeps its configuration
    there, for resume).
    """

    objective: Objective
    n_trials: int
    search_space: Mapping[str, BaseDistribution] = field(default_factory=dict)
    direction: Literal["minimize", "maximize"] = "minimize"
    sampler: optuna.samplers.BaseSampler | None = None
    pruner: optuna.pruners.BasePruner | None = None
    study_name: str = "batchml-study"
    storage: str | BaseStorage | None = None  # None: a journal file named after the study
    max_retries: int = 1
    study_attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Where:
    """Where the trials run: a cluster batchml starts on ``site``, or the caller's ``client``.

    Without ``client``, ``max_jobs`` worker jobs are started, each holding
    ``gpus_per_trial * trials_per_job`` GPUs; ``gpus_per_trial`` 1/k (0.5,
    0.25, ...) puts k trials on each GPU (gpu_share.py), and ``gpu_memory_per_trial``
    ('6GB', or 'auto' for the peaks trials measure) packs them by memory as well
    (gpu_memory.py). Trials' checkpoints go to
    ``checkpoint_dir`` (default: ``<study_name>.checkpoints`` in batchml's
    study folder, ~/.local/share/batchml/studies), where a retry finds them.
    With no worker connected for ``worker_patience_s`` the search stops with an
    error (pending jobs on a busy site count against it: raise it there).
    ``resources`` overrides what each worker job asks for beyond its GPUs and
    cores (walltime, gpu_names, ...: config/resources.py). ``sites`` spreads the
    search over several sites, each with its overrides of these fields
    (sites.py); ``site`` and ``client`` are then left unset.
    """

    site: str | None = None
    gpus_per_trial: float = 0
    gpu_memory_per_trial: str | None = None
    trials_per_job: int = 1
    max_jobs: int = 1
    client: Client | None = None
    checkpoint_dir: str | Path | None = None
    worker_patience_s: float = 1800.0
    resources: Mapping[str, Any] = field(default_factory=dict)
    sites: Mapping[str, Mapping[str, Any]] | None = None
