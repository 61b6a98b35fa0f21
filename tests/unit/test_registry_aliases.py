"""Aliases: compare-and-swap between processes, the append-only history, the lagging cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchml.registry import AliasConflict, Expect, NotFound, Registry
from batchml.registry.aliases import CURRENT
from tests.unit.registry_children import WAIT_FOR_START, finish, spawn, start

MOVE_WITH_CLI = (
    WAIT_FOR_START
    + """
from batchml.cli import main
sys.exit(main(["--no-color", "registry", "--root", sys.argv[2], "alias", "jets", "production",
               sys.argv[3], "--expect", "1"]))
"""
)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "registry")
    for i in range(3):
        registry.publish("jets", f"v{i}".encode())
    return registry


@pytest.mark.parametrize("attempt", range(3))
def test_two_processes_racing_a_cas_move_exactly_one_wins(
    registry: Registry, tmp_path: Path, attempt: int
) -> None:
    registry.alias("jets", "production", 1)
    barrier = tmp_path / f"go{attempt}"
    children = [spawn(MOVE_WITH_CLI, str(barrier), str(registry.root), v) for v in ("2", "3")]
    start(barrier)
    results = finish(children)
    statuses = sorted(status for status, _ in results)
    assert statuses == [0, 1], results
    loser_err = next(err for status, err in results if status == 1)
    winner = 2 if results[0][0] == 0 else 3
    assert f"error: alias 'production' points at {winner}, not 1 as expected" in loser_err
    assert registry.get("jets@production").version == winner
    outcomes = [(r["outcome"], r["from"], r["to"]) for r in registry.history("jets", "production")]
    loser = 5 - winner
    assert outcomes == [("moved", None, 1), ("moved", 1, winner), ("conflict", winner, loser)]


def test_cas_in_process(registry: Registry) -> None:
    registry.alias("jets", "staging", 1, expect=None)
    with pytest.raises(AliasConflict, match="points at 1, not none as expected"):
        registry.alias("jets", "staging", 2, expect=None)
    registry.alias("jets", "staging", 2, expect=1)
    registry.alias("jets", "staging", None, expect=2)
    assert registry.aliases("jets") == {}
    with pytest.raises(NotFound, match="no alias 'staging'"):
        registry.resolve("jets@staging")


def test_alias_to_a_missing_version_is_refused(registry: Registry) -> None:
    with pytest.raises(NotFound, match="no committed version jets/7"):
        registry.alias("jets", "production", 7)
    assert registry.history("jets") == []


def test_history_is_append_only_and_read_only(registry: Registry) -> None:
    for version in (1, 2, 3, 1):
        registry.alias("jets", "production", version, expect=Expect.ANY)
    history = registry.history("jets")
    assert [(r["from"], r["to"]) for r in history] == [(None, 1), (1, 2), (2, 3), (3, 1)]
    for record in history:
        assert {"user", "host", "pid", "time"} <= set(record)
    folder = registry.layout.alias("jets", "production")
    assert all(not (p.stat().st_mode & 0o222) for p in folder.glob("0*.json"))


def test_a_stale_or_lost_cache_is_followed_to_the_newest_change(registry: Registry) -> None:
    registry.alias("jets", "production", 1)
    folder = registry.layout.alias("jets", "production")
    stale = (folder / CURRENT).read_bytes()
    registry.alias("jets", "production", 2)
    registry.alias("jets", "production", 3)
    (folder / CURRENT).write_bytes(stale)  # a slow writer's late cache update
    assert registry.get("jets@production").version == 3
    (folder / CURRENT).unlink()  # the cache is only a cache
    assert registry.get("jets@production").version == 3
    with pytest.raises(AliasConflict):
        registry.alias("jets", "production", 1, expect=2)
