"""What runs on a dask worker for one trial: take a GPU slot, run the objective isolated.

The study is reached through optuna-integration's DaskStorage: its real
storage lives with the dask scheduler in the driver process, so workers need
no shared filesystem and no database, and the sampler and pruner read every
trial reported so far, from any worker.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import socket
import threading
import time
from collections.abc import Container, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import optuna
from distributed import Reschedule, get_worker
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from batchml.hpo.isolation import Outcome, TrialContext, run_isolated, warm_up
from batchml.hpo.outcomes import (
    DEVICES_ATTR,
    HOST_ATTR,
    SCRATCH_ATTR,
    SLOT_ATTR,
    STARTED_ATTR,
    WORKER_ATTR,
)
from batchml.hpo.scratch import trial_scratch
from batchml.hpo.slots import worker_pool
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
    gpus: int
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


ALL_TRIALS_FRESH_S = 0.2  # how long one read of all trials serves a trial's suggestions
STALE = Outcome("stale", message="the trial had already ended")  # the driver had recorded it


class KnownStudy:
    """The task's storage: answers what it can without a round trip, writes behind the trial.

    Why: through DaskStorage each call is a round trip to the driver (about 9 ms
    with 8 trials on 2 cores), and those in front of the objective, or between
    its suggestions, keep the GPU slot idle.
    - The study's id and directions never change, and the driver sends both.
    - One read of all trials (``read_trial``) serves the stale check, optuna.Trial,
      and the sampler's suggestions for ``ALL_TRIALS_FRESH_S``.
    - The trial's parameters and user attributes are written in order by a
      thread of their own while the objective goes on. Any other call to the
      storage waits for them first, and so does the trial's end (``flush``),
      where the first error a write met is raised. A report is written before
      ``trial.report`` returns (a preempted trial's retry gets its reports), so
      only a worker killed within a round trip of a suggestion can leave that
      parameter unwritten: the retry then draws it again.
    Everything else goes to the storage itself.
    """

    def __init__(
        self,
        storage: Any,
        study_name: str,
        study_id: int,
        directions: Sequence[optuna.study.StudyDirection],
    ) -> None:
        self._storage = storage
        self._study_name = study_name
        self._study_id = study_id
        self._directions = list(directions)
        self._kept: tuple[int, FrozenTrial] | None = None
        self._all_trials: dict[int, tuple[float, list[FrozenTrial]]] = {}
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="batchml-trial-writes")
        self._writes: list[Future[Any]] = []
        self._writes_lock = threading.Lock()

    def read_trial(self, trial_id: int) -> FrozenTrial:
        """The trial, from a read of all trials; the next ``get_trial`` of it returns this copy."""
        self._all_trials.pop(self._study_id, None)  # fresh: this read says whether it ended
        for trial in self.get_all_trials(self._study_id, deepcopy=False):
            if trial._trial_id == trial_id:
                mine = copy.deepcopy(trial)  # optuna.Trial updates its copy as it suggests
                break
        else:  # another study's trial
            mine = self._storage.get_trial(trial_id)
        self._kept = (trial_id, mine)
        return cast(FrozenTrial, mine)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        kept, self._kept = self._kept, None
        if kept is not None and kept[0] == trial_id:
            return kept[1]
        self.flush()
        return cast(FrozenTrial, self._storage.get_trial(trial_id))

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        """The study's trials; a read less than ``ALL_TRIALS_FRESH_S`` old serves again.

        Optuna's TPE reads the trials (in two selections) for each ``suggest_*``,
        each time through the driver: the largest round trips on the slot's path.
        One read of them all serves a burst of suggestions, filtered here; a
        pruner asking later, at a report, reads anew.
        """
        now = time.monotonic()
        kept = self._all_trials.get(study_id)
        if kept is None or now - kept[0] > ALL_TRIALS_FRESH_S:
            self.flush()
            kept = (now, self._storage.get_all_trials(study_id, deepcopy=False))
            self._all_trials[study_id] = kept
        trials = [t for t in kept[1] if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def get_study_id_from_name(self, study_name: str) -> int:
        if study_name == self._study_name:
            return self._study_id
        return int(self._storage.get_study_id_from_name(study_name))

    def get_study_directions(self, study_id: int) -> list[optuna.study.StudyDirection]:
        if study_id == self._study_id:
            return list(self._directions)
        return list(self._storage.get_study_directions(study_id))

    def set_trial_param(self, *args: Any) -> None:
        self._behind("set_trial_param", *args)

    def set_trial_user_attr(self, *args: Any) -> None:
        self._behind("set_trial_user_attr", *args)

    def _behind(self, method: str, *args: Any) -> None:
        with self._writes_lock:
            self._writes.append(self._writer.submit(getattr(self._storage, method), *args))

    def flush(self) -> None:
        """Wait for the writes sent so far; raise the first error one of them met."""
        with self._writes_lock:
            writes, self._writes = self._writes, []
        errors = [error for error in (write.exception() for write in writes) if error]
        if errors:
            raise errors[0]

    def close(self) -> None:
        """Send the writes left and stop the writing thread (their errors: see ``flush``)."""
        try:
            self.flush()
        finally:
            self._writer.shutdown()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._storage, name)
        if not callable(method):
            return method

        def after_writes(*args: Any, **kwargs: Any) -> Any:
            self.flush()
            return method(*args, **kwargs)

        return after_writes


def warm_worker(spares: int, dask_worker: Any = None) -> None:
    """Ready this worker for its first trials (run by ``Client.run``): the forkserver and
    ``spares`` trial processes, and the worker's own client, through which trials reach
    the study (connecting it took the first trial on each worker tens of milliseconds)."""
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


def execute_trial(task: TrialTask) -> Outcome:
    """Run one trial on this worker and say how it ended (the driver records it)."""
    late = too_late(task.expected_s, time.time())
    if late is not None:
        stop_taking_trials()
        logger.info("giving trial %s back and draining: %s", task.trial_id, late)
        raise Reschedule()  # the same trial, to a worker with time left
    study = optuna.load_study(
        study_name=task.study_name,
        # A BaseStorage by duck typing: Optuna only calls the storage's methods.
        storage=cast(
            BaseStorage,
            KnownStudy(task.storage, task.study_name, task.study_id, task.directions),
        ),
        sampler=task.sampler,
        pruner=task.pruner,
    )
    study.sampler.reseed_rng()  # copies of one seeded sampler on many workers would agree
    known = cast(KnownStudy, study._storage)
    try:
        if known.read_trial(task.trial_id).state.is_finished():
            # dask recomputes a task whose result was lost with its worker; the driver has
            # recorded this trial already, and running it again would change nothing but time.
            return STALE
        trial = optuna.Trial(study, task.trial_id)  # builds on the read above
        suggest_all(trial, task.search_space)
        label = f"{task.study_name}-trial-{trial.number}"
        with (
            worker_pool(task.gpus).take() as (slot, devices),
            trial_scratch(task.scratch_dir, label, task.keep_scratch) as scratch,
        ):
            # written behind the trial; Optuna's own start is when the driver asked for it
            trial.set_user_attr(STARTED_ATTR, time.time())
            trial.set_user_attr(SLOT_ATTR, slot)
            trial.set_user_attr(DEVICES_ATTR, ",".join(devices))
            trial.set_user_attr(HOST_ATTR, socket.gethostname())
            trial.set_user_attr(WORKER_ATTR, get_worker().address)
            if task.keep_scratch:
                trial.set_user_attr(SCRATCH_ATTR, str(scratch))
            checkpoints = Path(task.checkpoint_dir)
            checkpoints.mkdir(parents=True, exist_ok=True)
            context = TrialContext(
                devices=devices,
                scratch_dir=scratch,
                checkpoint_dir=checkpoints,
                site=task.site,
                attempt=task.attempt,
            )
            outcome = run_isolated(task.objective, trial, context, task.preload)
        return _written(known, outcome)
    finally:
        with contextlib.suppress(Exception):  # an error _written did not see: the trial failed
            known.close()


def _written(known: KnownStudy, outcome: Outcome) -> Outcome:
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
        if outcome.kind in ("complete", "pruned"):
            return Outcome(
                "raised", message=f"storing the trial failed: {type(exc).__name__}: {exc}"
            )
    return outcome
