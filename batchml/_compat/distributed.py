"""What batchml's HPO driver reads from distributed's inside, and the one change it makes there.

None of these is a documented contract of distributed; each is read here only.
- ``unrunnable``: the scheduler's own task states (``Scheduler.tasks[key].state``
  is ``"no-worker"``). A trial sent to a worker that died while no other was
  connected stays in that state for good, and only the driver can send it again.
- ``executing``: the tasks a worker runs, from the heartbeat metrics the
  scheduler lists per worker (``metrics["task_counts"]``). A worker that stopped
  taking trials is retired once it runs none: a wrong count retires a busy one.
- ``replace_worker``: a SpecCluster's ``worker_spec`` and ``new_worker_spec``,
  and ``scale`` making its workers match the spec (closing the ones left out,
  starting the new ones). dask-jobqueue resubmits no job that ended, so the
  driver replaces it this way. ``restart_absent`` does the same for every worker
  of a site that failed, when the site is tried again.
Checked on distributed 2026.8.0: tests/unit/test_compat_distributed.py fails on
another release until each is checked again, and names the one that moved.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from dask.typing import Key
from distributed import Client
from distributed.deploy import SpecCluster

CHECKED_ON = "2026.8.0"
UNRUNNABLE_STATE = "no-worker"


def unrunnable(client: Client, keys: list[Key]) -> list[Key]:
    """Of ``keys``, those the scheduler holds as unrunnable."""
    return list(client.run_on_scheduler(_unrunnable, keys=keys))


def _unrunnable(keys: list[Key], dask_scheduler: Any = None) -> list[Key]:
    """Run on the scheduler: ``unrunnable``."""
    tasks = dask_scheduler.tasks
    return [key for key in keys if key in tasks and tasks[key].state == UNRUNNABLE_STATE]


def executing(worker: Mapping[str, Any]) -> int:
    """Tasks a worker runs now, from its entry in ``Client.scheduler_info()["workers"]``."""
    counts = worker.get("metrics", {}).get("task_counts", {})
    return int(counts.get("executing", 0)) + int(counts.get("long-running", 0))


def replace_worker(cluster: SpecCluster, name: str) -> None:
    """Start a worker (a job, on dask-jobqueue) under a new name in place of ``name``, and
    close ``name``'s (a job that has left the queue already is no error)."""
    fresh = cluster.new_worker_spec()  # drawn while ``name`` is still taken: a new name
    del cluster.worker_spec[name]
    cluster.worker_spec.update(fresh)
    cluster.scale(len(cluster.worker_spec))


def restart_absent(cluster: SpecCluster, connected: set[str], jobs: int) -> None:
    """Start again, under new names, the workers of ``cluster`` not in ``connected``, and new
    ones (from its template) until it has ``jobs``: a failed site, tried again."""
    for name in [n for n in cluster.worker_spec if n not in connected]:
        cluster.worker_spec[f"{name}-{uuid.uuid4().hex[:6]}"] = cluster.worker_spec.pop(name)
    while len(cluster.worker_spec) < jobs:
        cluster.worker_spec.update(cluster.new_worker_spec())
    cluster.scale(len(cluster.worker_spec))
