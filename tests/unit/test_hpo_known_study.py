"""KnownStudy, the storage a trial's task uses: what it answers itself, what it reads once,
what it writes behind the trial, and that Optuna runs a study through it unchanged.

The storage behind it is a real in-memory storage that logs the calls reaching
it: each stands for a round trip to the driver.
"""

from __future__ import annotations

import threading
from typing import Any, cast

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, InMemoryStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from batchml.hpo.known_study import KnownStudy


class _Logged(InMemoryStorage):
    """An in-memory storage that logs the reads reaching it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def get_study_id_from_name(self, study_name: str) -> int:
        self.asked.append(f"id of {study_name}")
        return super().get_study_id_from_name(study_name)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        self.asked.append(f"directions of {study_id}")
        return super().get_study_directions(study_id)

    def get_trial(self, trial_id: int) -> optuna.trial.FrozenTrial:
        self.asked.append(f"trial {trial_id}")
        return super().get_trial(trial_id)

    def get_all_trials(self, *args: Any, **kwargs: Any) -> list[optuna.trial.FrozenTrial]:
        self.asked.append("all trials")
        return super().get_all_trials(*args, **kwargs)


def _known(storage: InMemoryStorage, name: str = "s", **kwargs: Any) -> KnownStudy:
    """A KnownStudy of study ``name`` as the driver's task describes it."""
    study_id = storage.get_study_id_from_name(name)
    directions = storage.get_study_directions(study_id)
    return KnownStudy(storage, name, study_id, directions, **kwargs)


def _running(remote: InMemoryStorage) -> tuple[optuna.Study, optuna.Trial, int, KnownStudy]:
    """Study "s" with one trial running: the study, the trial, its id, and a KnownStudy."""
    made = optuna.create_study(study_name="s", storage=remote)
    asked = made.ask()
    study_id = remote.get_study_id_from_name("s")
    trial_id = remote.get_trial_id_from_study_id_trial_number(study_id, asked.number)
    return made, asked, trial_id, _known(remote)


def test_its_study_s_id_and_directions_come_from_the_task_others_from_the_storage() -> None:
    remote = _Logged()
    optuna.create_study(study_name="s", storage=remote, direction="maximize")
    optuna.create_study(study_name="other", storage=remote)
    known = _known(remote)
    own, other = remote.get_study_id_from_name("s"), remote.get_study_id_from_name("other")
    remote.asked.clear()
    assert known.get_study_id_from_name("s") == own
    assert known.get_study_directions(own) == [StudyDirection.MAXIMIZE]
    assert remote.asked == []
    assert known.get_study_id_from_name("other") == other
    assert known.get_study_directions(other) == [StudyDirection.MINIMIZE]
    assert remote.asked == ["id of other", f"directions of {other}"]
    with pytest.raises(KeyError):
        known.get_study_id_from_name("missing")
    known.close()


def test_optuna_runs_a_study_through_it_and_every_write_reaches_the_storage() -> None:
    remote = InMemoryStorage()
    made = optuna.create_study(study_name="s", storage=remote, direction="maximize")
    known = _known(remote)
    study = optuna.load_study(study_name="s", storage=cast(BaseStorage, known))
    assert study.direction is StudyDirection.MAXIMIZE
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=3)
    trial = study.ask()
    trial.set_user_attr("seen", True)
    trial.report(0.5, step=0)
    study.tell(trial, 0.5)
    known.close()
    assert [t.state for t in made.trials] == [TrialState.COMPLETE] * 4
    assert made.trials[-1].user_attrs == {"seen": True}
    assert made.trials[-1].intermediate_values == {0: 0.5}
    assert all("x" in t.params for t in made.trials[:3])


@pytest.mark.parametrize(("fresh_s", "reads"), [(60.0, 1), (0.0, 3)])
def test_one_read_of_all_trials_serves_again_while_it_is_fresh(fresh_s: float, reads: int) -> None:
    remote = _Logged()
    made = optuna.create_study(study_name="s", storage=remote)
    made.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=3)
    made.ask()  # a trial still running
    known = _known(remote, fresh_s=fresh_s)
    study_id = remote.get_study_id_from_name("s")
    remote.asked.clear()
    assert len(known.get_all_trials(study_id)) == 4
    complete = known.get_all_trials(study_id, states=(TrialState.COMPLETE,))
    assert [t.number for t in complete] == [0, 1, 2]
    assert [t.number for t in known.get_all_trials(study_id, deepcopy=False)] == [0, 1, 2, 3]
    assert remote.asked.count("all trials") == reads
    known.close()


def test_reading_a_trial_serves_the_next_get_of_it_once() -> None:
    remote = _Logged()
    made, asked, trial_id, known = _running(remote)
    remote.asked.clear()
    assert known.read_trial(trial_id).state == TrialState.RUNNING
    assert known.get_trial(trial_id).number == asked.number  # the read above serves it
    assert remote.asked == ["all trials"]
    made.tell(asked, 1.0)
    remote.asked.clear()
    assert known.get_trial(trial_id).state == TrialState.COMPLETE  # later reads see changes
    assert remote.asked == [f"trial {trial_id}"]
    assert known.read_trial(trial_id).state.is_finished()  # a read anew, not the one kept
    known.close()


class _SlowWrites(InMemoryStorage):
    """A storage whose parameter writes wait until the test lets them through."""

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()
        self.order: list[str] = []

    def set_trial_param(self, *args: Any) -> None:
        assert self.open.wait(10), "the write never went through"
        self.order.append(f"param {args[1]}")
        super().set_trial_param(*args)

    def set_trial_intermediate_value(self, *args: Any) -> None:
        self.order.append(f"report {args[1]}")
        super().set_trial_intermediate_value(*args)


def test_parameters_are_written_behind_and_any_other_call_waits_for_them() -> None:
    remote = _SlowWrites()
    made, _, trial_id, known = _running(remote)
    known.set_trial_param(trial_id, "x", 0.25, FloatDistribution(0.0, 1.0))  # returns at once
    known.set_trial_user_attr(trial_id, "seen", True)
    assert remote.order == [] and made.trials[0].params == {}
    remote.open.set()
    known.set_trial_intermediate_value(trial_id, 0, 0.25)  # waits for the writes before it
    assert remote.order == ["param x", "report 0"]
    stored = known.get_trial(trial_id)
    assert stored.params == {"x": 0.25} and stored.intermediate_values == {0: 0.25}
    assert stored.user_attrs == {"seen": True}
    known.close()


def test_flush_raises_the_first_error_a_write_met_once() -> None:
    made, asked, trial_id, known = _running(InMemoryStorage())
    known.set_trial_param(trial_id, "x", 0.5, FloatDistribution(0.0, 1.0))
    known.set_trial_param(trial_id, "x", 0, CategoricalDistribution(["a"]))  # refused
    with pytest.raises(ValueError):
        known.flush()
    known.flush()  # reported once
    made.tell(asked, 0.0)
    known.set_trial_user_attr(trial_id, "late", 1)
    with pytest.raises(UpdateFinishedTrialError):
        known.close()
    assert "late" not in made.trials[0].user_attrs
