"""The driver's running counts of its study: what the budget, the progress line and the
walltime estimate need, without reading the study again.

Why counts and not reads: the driver used to read every trial of the study
after each trial ended and count them (ended, failed, best, the slowest tenth
of durations), work that grows with the study and sat on every trial's path.
The driver alone records how trials end (bookkeeping.py), so counts taken once
from the study at the start and updated at each record stay exact.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from batchml.hpo.outcome import STARTED_ATTR, has_ended


@dataclass(frozen=True)
class Recorded:
    """How one attempt ended, as the driver recorded it."""

    state: TrialState
    counts: bool  # towards n_trials: False for an attempt that is retried
    value: float | Sequence[float] | None = None
    duration_s: float | None = None  # from taking its slot to completing (COMPLETE only)


@dataclass
class Tally:
    """Counts of the study's trials; ``direction`` None for several objectives (no best)."""

    direction: StudyDirection | None
    ended: int = 0  # trials that count towards n_trials
    states: Counter[TrialState] = field(default_factory=Counter)
    best: float | None = None
    durations: list[float] = field(default_factory=list)  # of COMPLETE trials, sorted

    @classmethod
    def of(cls, trials: Iterable[FrozenTrial], directions: Sequence[StudyDirection]) -> Tally:
        """The counts of ``trials``, the study as read once."""
        tally = cls(directions[0] if len(directions) == 1 else None)
        for trial in trials:
            tally.states[trial.state] += 1
            tally.ended += has_ended(trial)
            if trial.state == TrialState.COMPLETE:
                tally._better(trial.values[0] if tally.direction and trial.values else None)
                if trial.datetime_complete is not None and STARTED_ATTR in trial.user_attrs:
                    started = float(trial.user_attrs[STARTED_ATTR])
                    tally.durations.append(trial.datetime_complete.timestamp() - started)
        tally.durations.sort()
        return tally

    def add(self, recorded: Recorded) -> None:
        """Count one more attempt the driver recorded."""
        self.states[recorded.state] += 1
        self.ended += recorded.counts
        if recorded.state == TrialState.COMPLETE:
            self._better(recorded.value)
            if recorded.duration_s is not None:
                bisect.insort(self.durations, recorded.duration_s)

    def _better(self, value: float | Sequence[float] | None) -> None:
        if self.direction is None or not isinstance(value, int | float):
            return
        pick = max if self.direction == StudyDirection.MAXIMIZE else min
        self.best = value if self.best is None else pick(self.best, value)

    def duration_estimate(self) -> float | None:
        """Seconds a trial takes, from taking its slot to completing: the 90th percentile of
        the completed trials (None before the first)."""
        if not self.durations:
            return None
        return self.durations[min(len(self.durations) - 1, int(0.9 * len(self.durations)))]
