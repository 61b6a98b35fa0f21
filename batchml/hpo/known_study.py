"""The storage a trial's task reaches its study through: fewer round trips to the driver.

Through DaskStorage each storage call is a round trip to the driver, and those
in front of the objective, or between its suggestions, keep the GPU slot idle
(BENCHMARKS.md, "Hyper-parameter search", has the steps and their cost).
``KnownStudy`` wraps that storage and answers what it can itself.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Container, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

import optuna
from optuna.trial import FrozenTrial, TrialState

from batchml._compat.optuna import trial_id as id_of
from batchml._compat.optuna_integration import set_user_attrs

ALL_TRIALS_FRESH_S = 0.2  # how long one read of all trials serves a trial's suggestions


class KnownStudy:
    """The task's storage (an Optuna storage by its methods): answers what it can without a
    round trip, and writes behind the trial.

    - The study's id and directions never change, and the driver sends both.
    - One read of all trials (``read_trial``) serves the stale check, optuna.Trial,
      and the sampler's suggestions for ``fresh_s`` seconds (a read of the trial
      alone, for a sampler that reads no other).
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
        fresh_s: float = ALL_TRIALS_FRESH_S,
    ) -> None:
        self._storage = storage
        self._study_name = study_name
        self._study_id = study_id
        self._directions = list(directions)
        self._fresh_s = fresh_s
        self._kept: tuple[int, FrozenTrial] | None = None
        self._all_trials: dict[int, tuple[float, list[FrozenTrial]]] = {}
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="batchml-trial-writes")
        self._writes: list[Future[Any]] = []
        self._writes_lock = threading.Lock()

    def read_trial(self, trial_id: int, *, with_others: bool = True) -> FrozenTrial:
        """The trial, from a read of all trials (``with_others``: the sampler reads them next)
        or of it alone; the next ``get_trial`` of it returns this copy.

        A sampler that reads no other trial (random sampling) is spared the read of
        all trials: its cost grows with the study, on the scheduler and the wire.
        """
        self._all_trials.pop(self._study_id, None)  # fresh: this read says whether it ended
        found = (
            [t for t in self.get_all_trials(self._study_id, deepcopy=False) if id_of(t) == trial_id]
            if with_others
            else []
        )
        # optuna.Trial updates its copy as it suggests; another study's trial is read alone
        mine = copy.deepcopy(found[0] if found else self._storage.get_trial(trial_id))
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
        """The study's trials; a read less than ``fresh_s`` old serves again.

        Optuna's TPE reads the trials (in two selections) for each ``suggest_*``,
        each time through the driver: the largest round trips on the slot's path.
        One read of them all serves a burst of suggestions, filtered here; a
        pruner asking later, at a report, reads anew.
        """
        now = time.monotonic()
        kept = self._all_trials.get(study_id)
        if kept is None or now - kept[0] > self._fresh_s:
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
        self._behind(self._storage.set_trial_param, *args)

    def set_trial_user_attr(self, *args: Any) -> None:
        self._behind(self._storage.set_trial_user_attr, *args)

    def set_trial_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """Several user attributes of the trial, written behind it in one round trip."""
        self._behind(set_user_attrs, self._storage, trial_id, dict(attrs))

    def _behind(self, write: Callable[..., Any], *args: Any) -> None:
        with self._writes_lock:
            self._writes.append(self._writer.submit(write, *args))

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
