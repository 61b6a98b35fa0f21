"""Dispatch of trials: what a worker asks the driver, and how many trials the driver keeps out."""

from __future__ import annotations

from typing import Any, cast

import optuna
import pytest
from optuna.storages import BaseStorage, InMemoryStorage

from batchml.hpo import worker
from batchml.hpo.study import Capacity
from batchml.hpo.worker import KnownStudy


class _RemoteStorage(InMemoryStorage):
    """Stands for DaskStorage: the questions it logs count as round trips."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def get_study_id_from_name(self, study_name: str) -> int:
        self.asked.append(f"id of {study_name}")
        return super().get_study_id_from_name(study_name)

    def get_study_directions(self, study_id: int) -> list[optuna.study.StudyDirection]:
        self.asked.append(f"directions of {study_id}")
        return super().get_study_directions(study_id)

    def get_trial(self, trial_id: int) -> optuna.trial.FrozenTrial:
        self.asked.append(f"trial {trial_id}")
        return super().get_trial(trial_id)

    def get_all_trials(self, *args: Any, **kwargs: Any) -> list[optuna.trial.FrozenTrial]:
        self.asked.append("all trials")
        return super().get_all_trials(*args, **kwargs)


def test_the_study_loads_from_the_task_and_all_else_reaches_the_storage() -> None:
    remote = _RemoteStorage()
    made = optuna.create_study(study_name="s", storage=remote, direction="maximize")
    other = optuna.create_study(study_name="other", storage=remote)
    remote.asked.clear()
    known = KnownStudy(remote, "s", made._study_id, tuple(made.directions))

    study = optuna.load_study(study_name="s", storage=cast(BaseStorage, known))
    assert remote.asked == []
    asked = study.ask()
    remote.asked.clear()
    assert not known.read_trial(asked._trial_id).state.is_finished()
    optuna.Trial(study, asked._trial_id)  # the read above serves it
    assert remote.asked == [f"trial {asked._trial_id}"]
    known.get_trial(asked._trial_id)  # once only: later reads see later changes
    assert remote.asked == [f"trial {asked._trial_id}"] * 2
    study.tell(asked, 0.1)
    assert study.direction is optuna.study.StudyDirection.MAXIMIZE
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, 0.5)
    assert [t.value for t in made.trials] == [0.1, 0.5]  # written to the real storage

    remote.asked.clear()
    loaded = optuna.load_study(study_name="other", storage=cast(BaseStorage, known))
    assert loaded._study_id == other._study_id
    assert remote.asked == ["id of other", f"directions of {other._study_id}"]
    with pytest.raises(KeyError):
        optuna.load_study(study_name="missing", storage=cast(BaseStorage, known))


@pytest.mark.parametrize(("fresh_s", "reads"), [(60.0, 1), (0.0, 4)])
def test_one_read_of_all_trials_serves_a_burst_of_suggestions(
    monkeypatch: pytest.MonkeyPatch, fresh_s: float, reads: int
) -> None:
    remote = _RemoteStorage()
    made = optuna.create_study(study_name="s", storage=remote)
    for _ in range(12):  # past TPE's random start-up trials
        made.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=1)
    monkeypatch.setattr(worker, "ALL_TRIALS_FRESH_S", fresh_s)
    known = KnownStudy(remote, "s", made._study_id, tuple(made.directions))
    study = optuna.load_study(study_name="s", storage=cast(BaseStorage, known))
    asked = made.ask()  # the driver asks; the worker builds the trial, as execute_trial does
    remote.asked.clear()
    trial = optuna.Trial(study, asked._trial_id)
    for name in ("x", "y", "z"):
        trial.suggest_float(name, 0.0, 1.0)
    assert remote.asked.count("all trials") == reads  # TPE reads for each suggestion


def test_trials_queue_behind_busy_slots_except_in_the_last_round() -> None:
    capacity = Capacity(slots=8, queued=2)
    assert capacity.room(running=7, left=1)  # a free slot: always
    assert capacity.room(running=8, left=9) and capacity.room(running=9, left=9)
    assert not capacity.room(running=10, left=30)  # one queued per job, no more
    assert not capacity.room(running=8, left=8)  # last round: free slots only
    assert not capacity.room(running=3, left=0)  # the budget is spent
