"""How batchml marks trials in the study, and which of them count towards the budget.

Optuna has one FAIL state; batchml keeps why a trial failed in user attributes
so the budget can skip the attempts that were retried (preempted, orphaned or
interrupted trials) and count everything else exactly once.
"""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

OUTCOME_ATTR = "batchml.outcome"  # raised | crashed | preempted | orphaned | interrupted
REASON_ATTR = "batchml.reason"
RETRIED_ATTR = "batchml.retried"  # True on an attempt that was replaced by a retry
RETRY_OF_ATTR = "batchml.retry_of"  # on a retry: the number of the attempt it replaces
ATTEMPT_ATTR = "batchml.attempt"
RETRIED_OUTCOMES = ("preempted", "orphaned", "interrupted")
JOBS_REPLACED_ATTR = "batchml.jobs_replaced"  # on the study: worker jobs the driver resubmitted
WORKERS_DRAINED_ATTR = "batchml.workers_drained"  # on the study: retired near their walltime
DEVICES_ATTR = "batchml.devices"  # set by the worker: the GPU ids the trial saw
SLOT_ATTR = "batchml.slot"  # set by the worker: the number of the trial's slot there (CPU or GPU)
HOST_ATTR = "batchml.host"
WORKER_ATTR = "batchml.worker"  # the dask worker's address
STARTED_ATTR = "batchml.started"  # epoch seconds when the trial took its GPU slot
SCRATCH_ATTR = "batchml.scratch"  # a kept scratch folder (site paths.keep_scratch)


def has_ended(trial: FrozenTrial) -> bool:
    """True for a trial that counts towards n_trials: any ending but a retried attempt."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and not trial.user_attrs.get(RETRIED_ATTR)
