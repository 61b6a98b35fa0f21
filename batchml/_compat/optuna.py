"""Optuna's private names batchml reads: the storage a Study writes through, and the ids
a study and a trial keep for themselves.

Why: Optuna has no public way to reach them, and batchml needs all three.
- The driver records how a trial ended on trials it holds no ``optuna.Trial`` of
  (one a dead driver left RUNNING, one whose worker set its parameters), and
  gives a retry its predecessor's reports: storage calls by trial id.
- A worker's task names its study and trial by id, so the worker builds both
  without asking the driver (each question is a round trip on the GPU slot's path).
- A retry lost before it began has sampled nothing, and its own retry must still
  carry the parameters it was enqueued with (``system_attrs["fixed_params"]``, where
  ``Study.enqueue_trial`` keeps them until a suggest reads them).
Each is read here only. Checked on optuna 5.1.0: tests/unit/test_compat_optuna.py
fails on another release, naming the attribute that moved, until it is checked again.
"""

from __future__ import annotations

from typing import cast

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

CHECKED_ON = "5.1.0"


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage object ``study`` reads and writes through (``Study._storage``)."""
    return cast(BaseStorage, study._storage)


def study_id(study: optuna.Study) -> int:
    """The study's id in its storage (``Study._study_id``)."""
    return int(study._study_id)


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The trial's id in its storage (``Trial._trial_id``, ``FrozenTrial._trial_id``)."""
    return int(trial._trial_id)


def enqueued_params(trial: FrozenTrial) -> dict[str, object]:
    """The parameters ``trial`` was enqueued with (none: {}), sampled or not yet
    (``system_attrs["fixed_params"]``, written by ``Study.enqueue_trial``)."""
    return dict(trial.system_attrs.get("fixed_params", {}))
