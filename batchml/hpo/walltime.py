"""Walltime-aware draining: a worker job near its end takes no trial it cannot finish.

A batch job is killed at its walltime, and a trial started too late is lost
work and a retry. Each worker job knows when it will be ended (its prologue
exports ``BATCHML_JOB_END`` when it starts), and the driver knows how long
trials take (the slowest tenth of those completed: tally.py). A worker handed a trial
that would not end in time gives it back to the scheduler (dask's
``Reschedule``) and stops taking trials: its ``TRIAL`` resource, which every
trial needs one of, drops to zero, so no trial is sent to it again while the
ones it runs finish. Once it runs none, the driver retires it, its job ends,
and a fresh job replaces it. The trial given back is the same Optuna trial,
not a new one: nothing is counted twice.
"""

from __future__ import annotations

import os

from batchml.backends.base import JOB_END_ENV

TRIAL_RESOURCE = "TRIAL"
SAFETY = 1.2  # a trial is expected to take up to this many times the estimate


def too_late(expected_s: float | None, now: float) -> str | None:
    """Why this worker cannot take a trial of ``expected_s`` seconds now (None: it can)."""
    raw = os.environ.get(JOB_END_ENV)
    if expected_s is None or not raw:
        return None
    end = float(raw)
    if now + SAFETY * expected_s <= end:
        return None
    return f"its job ends in {end - now:.0f} s and trials take up to {expected_s:.0f} s"


def stop_taking_trials() -> None:
    """Give this worker no ``TRIAL`` slots: the scheduler sends it no trial from now on."""
    from distributed import get_worker
    from distributed.utils import sync

    worker = get_worker()
    sync(worker.loop, worker.set_resources, **{TRIAL_RESOURCE: 0})
