"""The gc lease lock: one holder, stale locks of dead or expired holders broken, live ones not."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from batchml.registry import LockHeld
from batchml.registry.lease import LeaseLock
from tests.unit.registry_children import dead_pid


def plant_lock(path: Path, pid: int, expires: float) -> None:
    """A lock file as another process would have left it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = f"{socket.gethostname()}-{pid}-feedbeef"
    path.write_text(
        json.dumps({"owner": owner, "host": socket.gethostname(), "pid": pid, "expires": expires})
    )


def test_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "gc.lock"
    with LeaseLock(path) as first:
        assert first.held()
        with pytest.raises(LockHeld, match=f"held by pid {os.getpid()} on {socket.gethostname()}"):
            LeaseLock(path).acquire()
    assert not path.exists()
    assert list(path.parent.iterdir()) == []


def test_lock_of_a_dead_process_is_broken(tmp_path: Path) -> None:
    path = tmp_path / "gc.lock"
    plant_lock(path, dead_pid(), expires=time.time() + 3600)
    with LeaseLock(path) as lock:
        assert lock.held()


def test_expired_lease_is_broken_even_for_a_live_holder(tmp_path: Path) -> None:
    path = tmp_path / "gc.lock"
    plant_lock(path, os.getppid(), expires=time.time() - 1)
    with LeaseLock(path) as lock:
        assert lock.held()


def test_live_unexpired_lock_of_another_process_holds(tmp_path: Path) -> None:
    path = tmp_path / "gc.lock"
    plant_lock(path, os.getppid(), expires=time.time() + 3600)
    with pytest.raises(LockHeld, match="wait for that garbage collection"):
        LeaseLock(path).acquire()
    assert path.exists()
