"""Garbage collection: keep the best, spare aliased versions, tombstones keep numbers unique."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchml.registry import LockHeld, NotFound, Registry
from batchml.registry.layout import TOMBSTONE
from batchml.registry.lease import LeaseLock


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "registry")
    for loss in (0.5, 0.2, 0.9, 0.1, 0.7):
        registry.publish("jets", f"{loss}".encode(), metrics={"loss": loss})
    registry.publish("jets", b"unranked")
    return registry


def test_keep_best_by_metric_spares_aliases_and_unranked(registry: Registry) -> None:
    registry.alias("jets", "production", 3)  # the worst loss, but in production
    report = registry.gc(keep=2, metric="loss")
    assert sorted(int(p.name) for p in report.versions) == [1, 5]
    assert registry.versions("jets") == [2, 3, 4, 6]
    assert registry.verify() == []
    with pytest.raises(NotFound):
        registry.get("jets/1")
    assert [p.name for p in registry.layout.version("jets", 1).iterdir()] == [TOMBSTONE]
    assert registry.publish("jets", b"new").version == 7


def test_keep_newest_without_metric_and_maximize(registry: Registry) -> None:
    assert registry.gc(keep=4, dry_run=True).versions == [
        registry.layout.version("jets", n) for n in (2, 1)
    ]
    assert registry.versions("jets") == [1, 2, 3, 4, 5, 6]  # a dry run removes nothing
    report = registry.gc(keep=1, metric="loss", maximize=True)
    assert sorted(int(p.name) for p in report.versions) == [1, 2, 4, 5]
    assert registry.versions("jets") == [3, 6]


def test_second_gc_is_refused_while_one_holds_the_lock(registry: Registry) -> None:
    with LeaseLock(registry.layout.locks / "gc.lock"), pytest.raises(LockHeld):
        registry.gc(keep=0)
    assert registry.versions("jets") == [1, 2, 3, 4, 5, 6]


def test_other_hosts_leftovers_wait_for_the_grace(registry: Registry) -> None:
    leftover = registry.root / "staging" / "otherhost.cern.ch-4242-abcd"
    leftover.mkdir(parents=True)
    assert registry.gc().staging == []
    assert registry.gc(grace_s=-1).staging == [leftover]
    assert not leftover.exists()
