"""batchml._compat.optuna_integration: the scheduler still keeps DaskStorage's storage where
batchml reads it, and it is the object the workers' calls reach.

When a test here fails, an optuna-integration release changed: check the name
against the new release, then update the module (and its CHECKED_ON) or drop the reach.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version

import optuna
import pytest
from distributed import Client, LocalCluster
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import InMemoryStorage
from optuna_integration.dask import DaskStorage

from batchml._compat.optuna import trial_id
from batchml._compat.optuna_integration import CHECKED_ON, set_user_attrs, share_storage


def test_this_optuna_integration_is_the_one_the_private_name_was_checked_on() -> None:
    installed = version("optuna-integration")
    assert installed == CHECKED_ON, (
        f"batchml._compat.optuna_integration was checked on optuna-integration {CHECKED_ON}, "
        f"this is {installed}: check _OptunaSchedulerExtension.storages and "
        "_register_with_scheduler there, then set CHECKED_ON"
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(n_workers=1, threads_per_worker=1) as local:
        yield local


def _suggest(storage: DaskStorage) -> float:
    study = optuna.load_study(study_name="compat", storage=storage)
    trial = study.ask()
    value = trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, value)
    return value


def _attrs(storage: DaskStorage, trial_id: int) -> None:
    set_user_attrs(storage, trial_id, {"a": 1, "b": "two"})


@pytest.mark.parametrize("here", [True, False], ids=["scheduler here", "scheduler elsewhere"])
def test_the_driver_and_the_workers_share_one_storage(cluster: LocalCluster, here: bool) -> None:
    """With the scheduler in this process, the storage given is the one it serves (no copy)."""
    storage = InMemoryStorage()
    with Client(cluster) as client:
        shared, own = share_storage(storage, client, cluster.scheduler if here else None)
        assert (own is storage) == here
        study = optuna.create_study(study_name="compat", storage=own)
        value = client.submit(_suggest, shared, pure=False).result()
        assert [t.params["x"] for t in study.trials] == [value]  # a worker's write, seen here
        study.set_user_attr("driver", 1)  # and the driver's, seen through DaskStorage
        assert optuna.load_study(study_name="compat", storage=shared).user_attrs == {"driver": 1}
        running = study.ask()
        client.submit(_attrs, shared, trial_id(running), pure=False).result()
        assert study.trials[1].user_attrs == {"a": 1, "b": "two"}
        with pytest.raises(UpdateFinishedTrialError):  # an ended trial's error, as raised there
            client.submit(_attrs, shared, trial_id(study.trials[0]), pure=False).result()
