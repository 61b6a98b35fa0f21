"""The driver's counts of its study (tally.py): read once from a real study, then kept up to
date from what the driver records, they say what reading the study again would say."""

from __future__ import annotations

import time

import optuna
from optuna.trial import TrialState

from batchml.hpo import bookkeeping
from batchml.hpo.outcome import STARTED_ATTR, Outcome, has_ended
from batchml.hpo.tally import Recorded, Tally


def _study_of_every_ending() -> optuna.Study:
    """Two complete trials (values 3 and 1), one pruned, one that raised, one preempted
    (retried: its retry is waiting), one running."""
    study = optuna.create_study(direction="minimize")
    for value in (3.0, 1.0):
        trial = study.ask()
        trial.set_user_attr(STARTED_ATTR, time.time() - value)
        study.tell(trial, value)
    study.tell(study.ask(), state=TrialState.PRUNED)
    bookkeeping.fail(study, study.ask(), Outcome.RAISED, "boom", 1)
    bookkeeping.fail(study, study.ask(), Outcome.PREEMPTED, "gone", 1)
    study.ask()
    return study


def test_counts_read_from_a_study_match_its_trials() -> None:
    study = _study_of_every_ending()
    tally = Tally.of(study.trials, study.directions)
    assert tally.ended == sum(has_ended(t) for t in study.trials) == 4  # the retried one: no
    assert tally.states[TrialState.FAIL] == 2
    assert tally.states[TrialState.PRUNED] == 1
    assert tally.best == 1.0
    assert tally.durations == sorted(tally.durations) and len(tally.durations) == 2
    assert tally.duration_estimate() == max(tally.durations)


def test_recorded_attempts_count_as_reading_the_study_again_would() -> None:
    study = optuna.create_study(direction="maximize")
    tally = Tally.of(study.trials, study.directions)
    recorded = [
        bookkeeping.fail(study, study.ask(), Outcome.PREEMPTED, "gone", 1),  # retried
        bookkeeping.fail(study, study.ask(), Outcome.CRASHED, "segfault", 1),
    ]
    retry = study.ask()  # the preempted trial's retry, enqueued by fail
    study.tell(retry, 2.0)
    recorded.append(Recorded(TrialState.COMPLETE, True, 2.0, 0.5))
    for one in recorded:
        tally.add(one)
    again = Tally.of(study.trials, study.directions)
    assert (tally.ended, tally.states, tally.best) == (again.ended, again.states, again.best)
    assert tally.ended == 2 and tally.best == 2.0
    assert tally.duration_estimate() == 0.5


def test_several_objectives_have_no_best() -> None:
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.tell(study.ask(), [1.0, 2.0])
    tally = Tally.of(study.trials, study.directions)
    tally.add(Recorded(TrialState.COMPLETE, True, [0.5, 3.0], None))
    assert tally.best is None and tally.ended == 2
