"""batchml._compat.distributed: the scheduler's state and SpecCluster's spec still read and
change as batchml's driver needs.

When a test here fails, a distributed release changed: check the name the
failure gives against the new release, then update the module (and its
CHECKED_ON) or drop the reach.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from batchml._compat.distributed import (
    CHECKED_ON,
    executing,
    replace_worker,
    restart_absent,
    unrunnable,
)
from tests.unit.inprocess_dask import inprocess_client

GO = threading.Event()  # the workers run in this process: a task can wait on it


def _wait_for_go() -> bool:
    return GO.wait(60)


def test_this_distributed_is_the_one_its_inside_was_checked_on() -> None:
    installed = version("distributed")
    assert installed == CHECKED_ON, (
        f"batchml._compat.distributed was checked on distributed {CHECKED_ON}, this is "
        f"{installed}: check Scheduler.tasks[key].state == 'no-worker', the workers' "
        "metrics['task_counts'] in scheduler_info, and SpecCluster.worker_spec / "
        "new_worker_spec / scale there, then set CHECKED_ON"
    )


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with inprocess_client() as client:
        yield client


def test_a_task_no_worker_can_run_is_unrunnable(client: Client) -> None:
    stuck = client.submit(sum, [1, 2], resources={"NOBODY": 1}, pure=False)
    runs = client.submit(sum, [3, 4], pure=False)
    assert runs.result(timeout=30) == 7
    deadline = time.monotonic() + 30
    while not unrunnable(client, [stuck.key, runs.key]):
        assert time.monotonic() < deadline, "Scheduler.tasks[key].state is never 'no-worker'"
        time.sleep(0.05)
    assert unrunnable(client, [stuck.key, runs.key, "no-such-key"]) == [stuck.key]
    client.cancel(stuck)


def test_a_worker_running_a_task_counts_it_as_executing(client: Client) -> None:
    running = client.submit(_wait_for_go, pure=False)
    [address] = client.scheduler_info()["workers"]
    deadline = time.monotonic() + 30
    while executing(client.scheduler_info()["workers"][address]) != 1:
        assert time.monotonic() < deadline, "no 'executing' in the worker's metrics['task_counts']"
        time.sleep(0.05)
    GO.set()
    assert running.result(timeout=30)
    while executing(client.scheduler_info()["workers"][address]) != 0:
        assert time.monotonic() < deadline, "metrics['task_counts'] still counts an ended task"
        time.sleep(0.05)


def test_a_replaced_worker_closes_and_one_under_a_new_name_starts() -> None:
    with (
        LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2, timeout=60)
        before = set(cluster.worker_spec)
        gone = sorted(before)[0]
        replace_worker(cluster, gone)
        deadline = time.monotonic() + 60
        while {w["name"] for w in client.scheduler_info()["workers"].values()} == before:
            assert time.monotonic() < deadline, "scale() did not make the workers match the spec"
            time.sleep(0.05)
        client.wait_for_workers(2, timeout=60)
        names = {w["name"] for w in client.scheduler_info()["workers"].values()}
        assert gone not in names and len(names) == 2
        assert names == set(cluster.worker_spec) and not names <= before


def test_a_site_tried_again_restarts_its_dead_workers_under_new_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local site whose worker (its whole session) was killed: restart_absent starts it again."""
    from batchml.backends import backend_for
    from batchml.config.resources import Resources
    from batchml.config.site_lookup import load_site

    monkeypatch.setenv("HOME", str(tmp_path))
    site = load_site("local").site
    with (
        backend_for(site).cluster(Resources.from_site(site), jobs=1) as cluster,
        Client(cluster) as client,
    ):
        before = set(cluster.worker_spec)
        [group] = client.run(os.getpgid, 0).values()  # the worker's session, started by batchml
        os.killpg(group, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while client.scheduler_info()["workers"]:
            assert time.monotonic() < deadline, "the killed worker is still listed"
            time.sleep(0.1)
        restart_absent(cluster, connected=set(), jobs=1)
        client.wait_for_workers(1, timeout=120)
        names = {w["name"] for w in client.scheduler_info()["workers"].values()}
        assert len(names) == 1 and not names & before and names == set(cluster.worker_spec)
