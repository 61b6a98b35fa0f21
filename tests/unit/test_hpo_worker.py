"""A trial's task on a dask worker: how it ends when its writes fail or its trial was ended.

The tasks run as the driver sends them (``execute_trial`` through ``Client.submit``),
on a worker in this process, against a study the test holds as the driver does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import optuna
import pytest
from distributed import Client
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState
from optuna_integration.dask import DaskStorage

from batchml.hpo.outcome import Outcome, TrialEnd
from batchml.hpo.worker import TrialTask, execute_trial
from tests.unit.inprocess_dask import inprocess_client


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with inprocess_client() as client:
        yield client


class Driver:
    """A study as the driver holds it, and the tasks it sends for its trials."""

    def __init__(self, client: Client, folder: Path) -> None:
        self.client = client
        self.folder = folder
        self.storage = DaskStorage(InMemoryStorage(), client=client)  # kept by the scheduler
        self.study = optuna.create_study(study_name="w", storage=self.storage)

    def send(self, trial: optuna.Trial, objective: Callable[..., Any]) -> Any:
        study_id = self.storage.get_study_id_from_name("w")
        task = TrialTask(
            study_name="w", storage=self.storage, study_id=study_id,
            directions=tuple(self.study.directions),
            trial_id=self.storage.get_trial_id_from_study_id_trial_number(study_id, trial.number),
            objective=cloudpickle.dumps(objective), gpus=0, site="here",
            scratch_dir=str(self.folder), checkpoint_dir=str(self.folder / "checkpoints"),
            attempt=1, sampler=optuna.samplers.RandomSampler(), pruner=None, preload=(),
        )  # fmt: skip
        return self.client.submit(execute_trial, task, pure=False)


@pytest.fixture
def driver(client: Client, tmp_path: Path) -> Driver:
    return Driver(client, tmp_path)


def test_a_trial_whose_parameter_cannot_be_stored_fails_as_raised(driver: Driver) -> None:
    driver.study.optimize(lambda t: t.suggest_categorical("x", ["a"]) and 0.0, n_trials=1)

    def float_x(trial: Any, ctx: Any) -> float:
        return float(trial.suggest_float("x", 0.0, 1.0))  # the study holds x as categorical

    ended: TrialEnd = driver.send(driver.study.ask(), float_x).result(timeout=120)
    assert ended.outcome is Outcome.RAISED, ended
    assert ended.message.startswith("storing the trial failed: ValueError")


def test_a_task_of_a_trial_recorded_already_is_stale_and_runs_nothing(
    driver: Driver, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"

    def leaves_a_mark(trial: Any, ctx: Any) -> float:
        ran.touch()
        return 0.0

    trial = driver.study.ask()
    driver.study.tell(trial, state=TrialState.FAIL)  # as for a task dask computes again
    ended: TrialEnd = driver.send(trial, leaves_a_mark).result(timeout=120)
    assert ended.outcome is Outcome.STALE and not ran.exists()


def test_a_trial_ended_by_the_driver_while_it_ran_is_stale(driver: Driver, tmp_path: Path) -> None:
    waiting, go = tmp_path / "waiting", tmp_path / "go"

    def writes_late(trial: Any, ctx: Any) -> float:
        trial.suggest_float("y", 0.0, 1.0)
        waiting.touch()
        deadline = time.monotonic() + 60
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        trial.set_user_attr("late", 1)  # refused: the trial has ended
        return 1.0

    trial = driver.study.ask()
    future = driver.send(trial, writes_late)
    deadline = time.monotonic() + 120
    while not waiting.exists():
        assert time.monotonic() < deadline and not future.done(), future
        time.sleep(0.02)
    driver.study.tell(trial, state=TrialState.FAIL)
    go.touch()
    ended: TrialEnd = future.result(timeout=120)
    assert ended.outcome is Outcome.STALE, ended
    [stored] = driver.study.trials
    assert stored.state == TrialState.FAIL and "late" not in stored.user_attrs
