"""Dispatch of trials: what a worker asks the driver, and how many trials the driver keeps out."""

from __future__ import annotations

import threading
from typing import Any, cast

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.storages import BaseStorage, InMemoryStorage

from batchml.hpo import worker
from batchml.hpo.isolation import Outcome
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
    assert remote.asked == ["all trials"]
    known.get_trial(asked._trial_id)  # once only: later reads see later changes
    assert remote.asked == ["all trials", f"trial {asked._trial_id}"]
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


@pytest.mark.parametrize(("fresh_s", "reads"), [(60.0, 1), (0.0, 5)])
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
    known.read_trial(asked._trial_id)  # as execute_trial does: the first read of all trials
    trial = optuna.Trial(study, asked._trial_id)
    for name in ("x", "y", "z"):
        trial.suggest_float(name, 0.0, 1.0)
    assert remote.asked.count("all trials") == reads  # else TPE reads for each suggestion
    known.close()
    assert set(made.trials[-1].params) == {"x", "y", "z"}


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


def test_a_trial_writes_its_parameters_behind_itself_and_reports_after_them() -> None:
    remote = _SlowWrites()
    made = optuna.create_study(study_name="s", storage=remote)
    asked = made.ask()
    known = KnownStudy(remote, "s", made._study_id, tuple(made.directions))
    study = optuna.load_study(study_name="s", storage=cast(BaseStorage, known))
    known.read_trial(asked._trial_id)
    trial = optuna.Trial(study, asked._trial_id)
    x = trial.suggest_float("x", 0.0, 1.0)  # returns while its write still waits
    trial.set_user_attr("seen", True)
    assert remote.order == [] and made.trials[0].params == {}
    remote.open.set()
    trial.report(x, 0)  # a report waits for the writes before it, and is written at once
    assert remote.order == ["param x", "report 0"]
    stored = known.get_trial(asked._trial_id)
    assert stored.params == {"x": x} and stored.intermediate_values == {0: x}
    assert stored.user_attrs == {"seen": True}
    known.close()


def test_a_write_that_failed_fails_the_trial_and_one_to_an_ended_trial_makes_it_stale() -> None:
    remote = InMemoryStorage()
    made = optuna.create_study(study_name="s", storage=remote)
    asked = made.ask()
    known = KnownStudy(remote, "s", made._study_id, tuple(made.directions))
    known.set_trial_param(asked._trial_id, "x", 0.5, FloatDistribution(0.0, 1.0))
    known.set_trial_param(asked._trial_id, "x", 0, CategoricalDistribution(["a"]))  # refused
    outcome = worker._written(known, Outcome("complete", value=1.0))
    assert outcome.kind == "raised" and "storing the trial failed" in outcome.message
    assert worker._written(known, Outcome("complete", value=1.0)).kind == "complete"
    made.tell(asked, 0.0)
    known.set_trial_user_attr(asked._trial_id, "late", 1)
    assert worker._written(known, Outcome("complete", value=1.0)).kind == "stale"
    known.close()


def test_trials_fill_free_slots_then_queue_one_per_worker_except_in_the_last_round() -> None:
    slots = {"a": 4, "b": 4}
    assert Capacity.place(slots, {"a": 4, "b": 3}, left=1) == "b"  # a free slot: always
    assert Capacity.place(slots, {"a": 4, "b": 4}, left=9) in ("a", "b")
    assert Capacity.place(slots, {"a": 5, "b": 4}, left=9) == "b"  # one queued per worker
    assert Capacity.place(slots, {"a": 5, "b": 5}, left=30) is None  # no more
    assert Capacity.place(slots, {"a": 4, "b": 4}, left=8) is None  # last round: free slots only
    assert Capacity.place(slots, {"a": 1}, left=0) is None  # the budget is spent
    assert Capacity.place({}, {}, left=5) is None  # no worker connected yet
    assert Capacity.place({"drained": 0, "a": 4}, {"a": 4}, left=9) == "a"  # not a draining one
    assert Capacity.place({"drained": 0}, {}, left=9) is None


def test_a_trial_sent_to_a_worker_that_died_is_found_and_runs_when_sent_again() -> None:
    import os
    import signal
    import time

    import dask
    from distributed import Client, LocalCluster

    from batchml.hpo.study import TRIAL_DASK_CONFIG, WorkerPool

    with (
        dask.config.set(TRIAL_DASK_CONFIG),
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        pool = WorkerPool(client, cluster, patience_s=60.0)
        pool.check()
        [dead] = pool.slots
        os.kill(client.run(os.getpid)[dead], signal.SIGKILL)  # its nanny starts a new one
        while dead in client.scheduler_info()["workers"]:  # the scheduler saw it go
            time.sleep(0.01)
        # sent before the driver saw it go: dask holds it unrunnable, even once a worker is back
        future = client.submit(sum, [1, 2], workers=[dead], allow_other_workers=True, pure=False)
        client.wait_for_workers(1, timeout=60)
        while dead in pool.slots or not any(pool.slots.values()):  # until it takes tasks
            time.sleep(0.05)
            pool.check()
        assert list(pool.slots.values()) == [1]  # one thread, no GPU, no TRIAL slots
        assert pool.stranded({future: dead}) == [future]
        client.cancel(future)
        again = client.submit(sum, [1, 2], workers=list(pool.slots), allow_other_workers=True)
        assert again.result(timeout=30) == 3
        assert pool.stranded({again: next(iter(pool.slots))}) == []


def test_a_cluster_without_the_gpus_a_trial_needs_is_refused_at_once() -> None:
    from distributed import Client, LocalCluster

    from batchml.backends.base import SchedulerError
    from batchml.hpo import run_study

    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(1)
        with pytest.raises(SchedulerError, match=r"needs 1 GPU\(s\) and no dask worker"):
            run_study(
                lambda trial, ctx: 0.0, n_trials=2, client=client, gpus_per_trial=1,
                study_name="no-gpus", storage=InMemoryStorage(), progress=False,
            )  # fmt: skip
