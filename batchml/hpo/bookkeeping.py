"""The driver's writes to the study: new trials, and how each ended.

The driver alone asks Optuna for trials and records how they ended, so the
trial budget is global and nothing is counted twice. It tells apart endings
that Optuna alone would all call FAIL (outcome.py): an objective that raised or
a process that crashed fails for good (a retry repeats it); a trial whose worker
vanished, or whose driver stopped, fails marked as such and is enqueued again
with the same parameters, and the retry gets the intermediate values its
predecessor reported.
"""

from __future__ import annotations

import time
from typing import Any

import optuna
from distributed import Future
from optuna.trial import FrozenTrial, TrialState

from batchml._compat.optuna import enqueued_params, storage_of, study_id, trial_id
from batchml._fs import PrivateFolderError
from batchml.hpo.outcome import (
    ATTEMPT_ATTR,
    FREE_RETRIES_ATTR,
    OUTCOME_ATTR,
    REASON_ATTR,
    RETRIED_ATTR,
    RETRY_ALONE_ATTR,
    RETRY_OF_ATTR,
    Outcome,
    TrialEnd,
)
from batchml.hpo.tally import Recorded


def ask(study: optuna.Study) -> optuna.Trial:
    """A new trial; a retry (enqueued with its parameters) gets its predecessor's reports."""
    trial = study.ask()
    origin = trial.user_attrs.get(RETRY_OF_ATTR)
    if origin is not None:
        previous = _numbered(study, int(origin))
        for step, value in previous.intermediate_values.items():
            storage_of(study).set_trial_intermediate_value(trial_id(trial), step, value)
    return trial


def first_attempt(study: optuna.Study, number: int, attrs: dict[str, Any]) -> int:
    """The number of the trial a chain of retries started from."""
    while RETRY_OF_ATTR in attrs:
        number = int(attrs[RETRY_OF_ATTR])
        attrs = _numbered(study, number).user_attrs
    return number


def _numbered(study: optuna.Study, number: int) -> FrozenTrial:
    """The study's trial ``number``, read alone (``study.trials`` copies every trial)."""
    storage = storage_of(study)
    return storage.get_trial(
        storage.get_trial_id_from_study_id_trial_number(study_id(study), number)
    )


def record(
    study: optuna.Study, trial: optuna.Trial, future: Future, max_retries: int
) -> Recorded | None:
    """Record how the trial ``future`` ran ended (it has ended); None if it was already."""
    if storage_of(study).get_trial(trial_id(trial)).state.is_finished():
        return None  # a recomputed task (its first result was lost with a worker)
    try:
        ended: TrialEnd = future.result()
    except PrivateFolderError as exc:  # no private scratch on the worker: a retry would not either
        fail(study, trial, Outcome.RAISED, str(exc), max_retries)
        raise
    except Exception as exc:  # the worker, not the objective, failed
        return fail(study, trial, Outcome.PREEMPTED, f"{type(exc).__name__}: {exc}", max_retries)
    if ended.outcome is Outcome.COMPLETE:
        study.tell(trial, ended.value)
        took = None if ended.started is None else time.time() - ended.started
        return Recorded(TrialState.COMPLETE, True, ended.value, took)
    if ended.outcome is Outcome.PRUNED:
        study.tell(trial, state=TrialState.PRUNED)
        return Recorded(TrialState.PRUNED, True)
    return fail(study, trial, ended.outcome, ended.message, max_retries)


def fail(
    study: optuna.Study,
    trial: optuna.Trial | FrozenTrial,
    outcome: Outcome,
    why: str,
    max_retries: int | None,
) -> Recorded:
    """Mark the trial FAIL with its outcome and why; enqueue a retry if the outcome is
    retried and the trial had no more than ``max_retries`` attempts (None: however many).

    A trial out of GPU memory while sharing its device is retried alone, and that
    retry is free: it counts neither here nor in later ``max_retries`` checks.
    """
    storage = storage_of(study)
    ident = trial_id(trial)
    stored = storage.get_trial(ident)
    storage.set_trial_user_attr(ident, OUTCOME_ATTR, outcome.value)
    storage.set_trial_user_attr(ident, REASON_ATTR, why[-4000:])
    attempt = int(stored.user_attrs.get(ATTEMPT_ATTR, 1))
    crowded = outcome is Outcome.OOM_WHILE_SHARING
    free = int(stored.user_attrs.get(FREE_RETRIES_ATTR, 0))  # retries so far that were free
    counted = attempt - free  # attempts so far that count against max_retries
    retried = outcome.retried and (crowded or max_retries is None or counted <= max_retries)
    if retried:
        storage.set_trial_user_attr(ident, RETRIED_ATTR, True)
    if isinstance(trial, optuna.Trial):
        study.tell(trial, state=TrialState.FAIL)
    else:
        storage.set_trial_state_values(ident, TrialState.FAIL)
    if retried:
        # Its parameters are read once it has ended: a task the cancel came too late for
        # may still be sampling them, and a finished trial takes no more.
        ended = storage.get_trial(ident)
        # A retry lost before it began sampled nothing: its enqueued parameters carry on.
        params = {**enqueued_params(ended), **ended.params}
        attrs = {RETRY_OF_ATTR: stored.number, ATTEMPT_ATTR: attempt + 1,
                 FREE_RETRIES_ATTR: free + crowded}  # fmt: skip
        if crowded or stored.user_attrs.get(RETRY_ALONE_ATTR):  # alone stays alone
            attrs[RETRY_ALONE_ATTR] = True
        study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=False)
    return Recorded(TrialState.FAIL, counts=not retried)


def retry_orphans(study: optuna.Study) -> None:
    """Trials a dead driver left RUNNING: mark them orphaned and retry them."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        fail(study, trial, Outcome.ORPHANED, "the driver stopped while this trial ran", None)
