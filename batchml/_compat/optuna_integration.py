"""What batchml reads and calls inside optuna-integration's DaskStorage: the scheduler's
registry of storages (``_OptunaSchedulerExtension.storages``) and the function that
fills it (``_register_with_scheduler``).

Why: the scheduler of batchml's own clusters runs in the driver's process.
DaskStorage would pickle the study's storage to it: a second object that
replays the whole journal again (a resume of a long study waits for it) and
holds a second copy of every trial, and each of the driver's own storage calls
(a trial asked, told, recorded: several calls each) would be a round trip over
TLS to its own process. ``share_storage`` registers the driver's storage object
itself there, and the driver calls it directly (Optuna's storages are
thread-safe); the workers reach it through DaskStorage, one round trip per
call, and write a trial's placement attributes in one (``set_user_attrs``).
Checked on optuna-integration 5.0.0: tests/unit/test_compat_optuna_integration.py
fails on another release until it is checked again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from distributed import Client
from optuna.storages import BaseStorage

CHECKED_ON = "5.0.0"


def share_storage(
    storage: BaseStorage, client: Client, scheduler: Any | None
) -> tuple[BaseStorage, BaseStorage]:
    """The DaskStorage the workers use, and the storage the driver calls.

    ``scheduler``: the distributed Scheduler when it runs in this process (then
    ``storage`` itself is registered there, and the driver calls what the
    scheduler serves), else None (a copy is sent, and the driver goes through
    DaskStorage too).
    """
    from optuna_integration.dask import DaskStorage
    from optuna_integration.dask.dask import _register_with_scheduler

    if scheduler is None:
        shared = DaskStorage(storage, client=client)
        return shared, shared
    shared = DaskStorage(None, client=client, register=False)
    _register_with_scheduler(scheduler, storage, shared.name)
    return shared, _registered(scheduler, shared.name)


def _registered(scheduler: Any, name: str) -> BaseStorage:
    return cast(BaseStorage, scheduler.extensions["optuna"].storages[name])


def set_user_attrs(storage: Any, trial_id: int, attrs: Mapping[str, Any]) -> None:
    """Set several user attributes of a trial: through a DaskStorage in one round trip
    (``run_on_scheduler`` calling the scheduler's storage, where DaskStorage makes one
    per attribute), else one call each."""
    from optuna_integration.dask import DaskStorage

    if isinstance(storage, DaskStorage):
        storage.client.run_on_scheduler(
            _set_user_attrs, name=storage.name, trial_id=trial_id, attrs=dict(attrs)
        )
        return
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)


def _set_user_attrs(name: str, trial_id: int, attrs: dict[str, Any], dask_scheduler: Any) -> None:
    """Run on the scheduler: ``set_user_attrs``."""
    storage = _registered(dask_scheduler, name)
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)
