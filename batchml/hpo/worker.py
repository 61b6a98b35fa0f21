"""What runs on a dask worker for one trial: take a GPU slot, run the objective isolated.

The study is reached through optuna-integration's DaskStorage: its real
storage lives with the dask scheduler in the driver process, so workers need
no shared filesystem and no database, and the sampler and pruner read every
trial reported so far, from any worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import optuna
from distributed import Reschedule, get_worker
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage

from batchml.hpo import gpu_samples
from batchml.hpo.gpu_memory import GpuMemory
from batchml.hpo.isolation import TrialContext, run_isolated, warm_up
from batchml.hpo.known_study import KnownStudy
from batchml.hpo.outcome import (
    DEVICES_ATTR,
    GPU_PEAK_ATTR,
    GPU_SAMPLES_ATTR,
    HOST_ATTR,
    SCRATCH_ATTR,
    SITE_ATTR,
    SLOT_ATTR,
    STARTED_ATTR,
    WORKER_ATTR,
    Outcome,
    TrialEnd,
)
from batchml.hpo.scratch import trial_scratch
from batchml.hpo.slots import Slot, SlotPool, worker_pool
from batchml.hpo.walltime import stop_taking_trials, too_late

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialTask:
    """Everything a worker needs to run one trial (pickled to the worker by dask)."""

    study_name: str
    storage: Any  # DaskStorage, or any storage the worker can reach
    study_id: int
    directions: tuple[optuna.study.StudyDirection, ...]
    trial_id: int
    objective: bytes  # cloudpickled: dask's plain pickle would send a script's function by name
    gpus: float  # per trial: whole GPUs, or a share 1/k of one (gpu_share.py)
    site: str
    scratch_dir: str  # the site's paths.scratch_dir, expanded on the worker (see hpo.scratch)
    checkpoint_dir: str
    attempt: int
    sampler: optuna.samplers.BaseSampler | None
    pruner: optuna.pruners.BasePruner | None
    search_space: Mapping[str, optuna.distributions.BaseDistribution] = field(default_factory=dict)
    preload: Sequence[str] = ("torch",)
    expected_s: float | None = None  # how long trials take so far (None: unknown, or no walltime)
    keep_scratch: bool = False  # leave the trial's scratch folder behind (for debugging)
    gpu_memory: GpuMemory = None  # pack trials sharing a GPU by this memory (gpu_memory.py)
    alone: bool = False  # a retry of a trial out of memory beside others: a device of its own


STALE = TrialEnd(Outcome.STALE, message="the trial had already ended")  # recorded by the driver


def warm_worker(spares: int, dask_worker: Any = None) -> None:
    """Ready this worker for its first trials (run by ``Client.run``): the forkserver and
    ``spares`` trial processes, and the worker's own client, through which trials reach
    the study (else the first trial on each worker connects it, on its slot's path)."""
    dask_worker.client  # noqa: B018 - connects it
    warm_up(spares)


def suggest_all(
    trial: optuna.Trial, space: Mapping[str, optuna.distributions.BaseDistribution]
) -> None:
    """Draw a declared search space up front, so the objective finds it in trial.params."""
    for name, dist in space.items():
        if isinstance(dist, optuna.distributions.FloatDistribution):
            trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
        elif isinstance(dist, optuna.distributions.IntDistribution):
            trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
        elif isinstance(dist, optuna.distributions.CategoricalDistribution):
            trial.suggest_categorical(name, dist.choices)


def execute_trial(task: TrialTask) -> TrialEnd:
    """Run one trial on this worker and say how it ended (the driver records it)."""
    late = too_late(task.expected_s, time.time())
    if late is not None:
        stop_taking_trials()
        logger.info("giving trial %s back and draining: %s", task.trial_id, late)
        raise Reschedule()  # the same trial, to a worker with time left
    known = KnownStudy(task.storage, task.study_name, task.study_id, task.directions)
    study = optuna.load_study(
        study_name=task.study_name,
        storage=cast(BaseStorage, known),  # by duck typing: Optuna only calls its methods
        sampler=task.sampler,
        pruner=task.pruner,
    )
    study.sampler.reseed_rng()  # copies of one seeded sampler on many workers would agree
    try:
        alone = isinstance(study.sampler, optuna.samplers.RandomSampler)  # reads no other trial
        if known.read_trial(task.trial_id, with_others=not alone).state.is_finished():
            # dask recomputes a task whose result was lost with its worker; the driver has
            # recorded this trial already, and running it again would change nothing but time.
            return STALE
        trial = optuna.Trial(study, task.trial_id)  # builds on the read above
        suggest_all(trial, task.search_space)
        label = f"{task.study_name}-trial-{trial.number}"
        pool = worker_pool(task.gpus, task.gpu_memory)
        with (
            pool.take(task.alone) as held,
            trial_scratch(task.scratch_dir, label, task.keep_scratch) as scratch,
        ):
            started = time.time()
            if held.devices:  # from the first GPU trial on; idle without NVML
                gpu_samples.worker_sampler().start()
            # written behind the trial, in one round trip; Optuna's own start is when the
            # driver asked for it
            placement = {
                STARTED_ATTR: started,
                SLOT_ATTR: held.number,
                DEVICES_ATTR: ",".join(held.devices),
                HOST_ATTR: socket.gethostname(),
                SITE_ATTR: task.site,
                WORKER_ATTR: get_worker().address,
            }
            if task.keep_scratch:
                placement[SCRATCH_ATTR] = str(scratch)
            known.set_trial_user_attrs(task.trial_id, placement)
            checkpoints = Path(task.checkpoint_dir)
            checkpoints.mkdir(parents=True, exist_ok=True)
            context = TrialContext(
                devices=held.devices,
                scratch_dir=scratch,
                checkpoint_dir=checkpoints,
                site=task.site,
                attempt=task.attempt,
            )
            ended = run_isolated(task.objective, trial, context, task.preload)
            ended = _on_its_devices(pool, held, trial, ended, started)
        return dataclasses.replace(_written(known, ended), started=started)
    finally:
        with contextlib.suppress(Exception):  # an error _written did not see: the trial failed
            known.close()


def _on_its_devices(
    pool: SlotPool, held: Slot, trial: optuna.Trial, ended: TrialEnd, started: float
) -> TrialEnd:
    """What the trial did on its devices, stored on it: its peak memory (the pool's packer
    learns it), their samples; and an out-of-memory beside other trials, retried alone."""
    if not held.devices:
        return ended
    pool.record_peak(ended.gpu_peak)
    if ended.gpu_peak:
        trial.set_user_attr(GPU_PEAK_ATTR, ended.gpu_peak)
    sampler = gpu_samples.worker_sampler()
    stored = [gpu_samples.to_attr(taken) for device in held.devices
              if (taken := sampler.during(device, started, time.time()))]  # fmt: skip
    if stored:
        trial.set_user_attr(GPU_SAMPLES_ATTR, stored)
    if ended.out_of_memory and pool.had_company(held):
        return dataclasses.replace(ended, outcome=Outcome.OOM_WHILE_SHARING)
    return ended


def _written(known: KnownStudy, ended: TrialEnd) -> TrialEnd:
    """The outcome once the trial's writes have reached the study.

    A trial whose parameters or user attributes were not stored did not
    complete: it is reported as raised, with the storage's error (stale if the
    driver had ended it meanwhile).
    """
    try:
        known.flush()
    except UpdateFinishedTrialError:
        return STALE
    except Exception as exc:
        if ended.outcome in (Outcome.COMPLETE, Outcome.PRUNED):
            return TrialEnd(
                Outcome.RAISED, message=f"storing the trial failed: {type(exc).__name__}: {exc}"
            )
    return ended
