"""How a trial ended, and the names under which batchml writes that into the study.

Optuna has one FAIL state; batchml keeps why a trial failed in a user attribute
(``batchml.outcome``) so the budget can skip the attempts that were retried
(preempted, orphaned or interrupted trials) and count everything else exactly
once. Every attribute batchml writes on a trial or a study is named here. The
stored values are the enum's values, spelled as they always were: a study
written by an earlier batchml reads the same, and resumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from optuna.trial import FrozenTrial, TrialState


class Outcome(str, Enum):
    """How one attempt at a trial ended; the failures are stored in ``OUTCOME_ATTR``."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    RAISED = "raised"  # the objective raised: the code is wrong, a retry repeats it
    CRASHED = "crashed"  # its process died by itself (a segfault repeats too)
    PREEMPTED = "preempted"  # its worker or process was killed from outside: retried
    ORPHANED = "orphaned"  # a driver died while it ran (found by the next driver): retried
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM stopped the driver while it ran: retried
    STALE = "stale"  # a recomputed task of a trial the driver had recorded: nothing to record
    # CUDA ran out of memory while other trials shared its device: retried alone on a
    # device, however often (the retry cannot share, so it cannot end so again)
    OOM_WHILE_SHARING = "oom_while_sharing"

    @property
    def retried(self) -> bool:
        """Whether the attempt did nothing wrong, so the trial runs again with its parameters."""
        return self in RETRIED_OUTCOMES


# The outcomes stored on FAIL trials, in the order `batchml hpo status` lists them.
FAILURES = (
    Outcome.RAISED,
    Outcome.CRASHED,
    Outcome.PREEMPTED,
    Outcome.ORPHANED,
    Outcome.INTERRUPTED,
    Outcome.OOM_WHILE_SHARING,
)
RETRIED_OUTCOMES = frozenset(
    {Outcome.PREEMPTED, Outcome.ORPHANED, Outcome.INTERRUPTED, Outcome.OOM_WHILE_SHARING}
)


@dataclass(frozen=True)
class TrialEnd:
    """What a worker sends the driver for one trial: how it ended, its value, or why it failed."""

    outcome: Outcome
    value: float | Sequence[float] | None = None
    message: str = ""
    gpu_peak: int = 0  # bytes of GPU memory the trial process held at most (gpu_memory.py)
    out_of_memory: bool = False  # the objective raised CUDA out-of-memory
    started: float | None = None  # epoch seconds when it took its slot (None: it never did)


OUTCOME_ATTR = "batchml.outcome"  # on a FAIL trial: one of FAILURES' values
REASON_ATTR = "batchml.reason"
RETRIED_ATTR = "batchml.retried"  # True on an attempt that was replaced by a retry
RETRY_OF_ATTR = "batchml.retry_of"  # on a retry: the number of the attempt it replaces
ATTEMPT_ATTR = "batchml.attempt"
RETRY_ALONE_ATTR = "batchml.retry_alone"  # on a retry: it runs alone on a whole device
FREE_RETRIES_ATTR = "batchml.free_retries"  # retries in its chain not counted in max_retries
JOBS_REPLACED_ATTR = "batchml.jobs_replaced"  # on the study: worker jobs the driver resubmitted
WORKERS_DRAINED_ATTR = "batchml.workers_drained"  # on the study: retired near their walltime
DEVICES_ATTR = "batchml.devices"  # set by the worker: the GPU ids the trial saw
SLOT_ATTR = "batchml.slot"  # set by the worker: the number of the trial's slot there (CPU or GPU)
HOST_ATTR = "batchml.host"
SITE_ATTR = "batchml.site"  # set by the worker: the name of the site the trial ran on
SITES_ATTR = "batchml.sites"  # on the study: each site's slots, and why and until when it is down
WORKER_ATTR = "batchml.worker"  # the dask worker's address
STARTED_ATTR = "batchml.started"  # epoch seconds when the trial took its GPU slot
SCRATCH_ATTR = "batchml.scratch"  # a kept scratch folder (site paths.keep_scratch)
IO_ATTR = "batchml.io"  # set by the trial process: what it read and waited (io_profile.py)
GPU_PEAK_ATTR = "batchml.gpu_peak_bytes"  # the trial's peak GPU memory (gpu_memory.py)
GPU_SAMPLES_ATTR = "batchml.gpu_samples"  # its device's NVML samples while it ran (gpu_samples.py)


def has_ended(trial: FrozenTrial) -> bool:
    """True for a trial that counts towards n_trials: any ending but a retried attempt."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and not trial.user_attrs.get(RETRIED_ATTR)
