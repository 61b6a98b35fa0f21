"""Aliases (``production``, ``staging``...) with compare-and-swap, without any lock.

An alias is a folder ``aliases/<alias>/`` holding one file per change,
``00000001.json``, ``00000002.json``..., each created exclusively (a hard link
of a complete file): of two writers that read generation g, only one can create
g+1, which is what makes the move a compare-and-swap. The chain of change files
is the alias's append-only history and its truth. ``current.json`` is a cache
of the newest change, replaced atomically after each move so a lookup costs
one read and one ``stat`` (of the next generation, which a reader follows when
the cache lags). A refused move is recorded too, as ``rejected-*.json``.
"""

from __future__ import annotations

import contextlib
import enum
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from batchml.atomic import owner_tag, write_atomic
from batchml.registry.atomic import create_exclusive, dump_json, make_dirs, read_json
from batchml.registry.errors import AliasConflict
from batchml.registry.lineage import now_iso, user_name

CURRENT = "current.json"
REJECTED = "rejected-"


class Expect(enum.Enum):
    """``Expect.ANY``: move the alias whatever it points at now (no compare)."""

    ANY = "any"


@dataclass(frozen=True)
class AliasState:
    generation: int
    version: int | None


def _change_path(folder: Path, generation: int) -> Path:
    return folder / f"{generation:08d}.json"


def current(folder: Path) -> AliasState:
    """Where the alias points now: the cached pointer, followed to the newest change."""
    try:
        cached = read_json(folder / CURRENT)
        state = AliasState(cached["generation"], cached["version"])
    except (FileNotFoundError, ValueError, KeyError):
        state = _rebuild(folder)
    stale = False
    while (following := _change_path(folder, state.generation + 1)).exists():
        state = AliasState(state.generation + 1, read_json(following)["to"])
        stale = True
    if stale:
        _cache(folder, state)
    return state


def _rebuild(folder: Path) -> AliasState:
    """The newest change found by listing the folder (when the cache is missing or torn)."""
    try:
        numbers = [int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit()]
    except FileNotFoundError:
        numbers = []
    if not numbers:
        return AliasState(0, None)
    newest = max(numbers)
    return AliasState(newest, read_json(_change_path(folder, newest))["to"])


def _cache(folder: Path, state: AliasState) -> None:
    # A read-only reader cannot refresh the cache; the next writer will.
    with contextlib.suppress(OSError):
        write_atomic(folder / CURRENT, dump_json(vars(state)))


def move(alias: str, folder: Path, version: int | None, expect: int | Expect | None) -> AliasState:
    """Point the alias at ``version`` (None removes it) if it points at ``expect`` now.

    AliasConflict, naming where the alias points instead, when another writer
    moved it first; the refused attempt is recorded in the history either way.
    """
    make_dirs(folder)
    while True:
        now = current(folder)
        if expect is not Expect.ANY and now.version != expect:
            _reject(alias, folder, now, version, expect)
        change = _record(now.version, version, "moved") | {"generation": now.generation + 1}
        if create_exclusive(_change_path(folder, now.generation + 1), dump_json(change)):
            state = AliasState(now.generation + 1, version)
            _cache(folder, state)
            return state


def _reject(
    alias: str, folder: Path, now: AliasState, wanted: int | None, expect: int | Expect | None
) -> None:
    record = _record(now.version, wanted, "conflict") | {"expected": expect}
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%f")
    create_exclusive(folder / f"{REJECTED}{stamp}-{owner_tag()}.json", dump_json(record))
    raise AliasConflict(
        f"alias {alias!r} points at {_show(now.version)}, not {_show(expect)} as expected; "
        f"it was not moved to {_show(wanted)}",
        hint=f"another writer moved it first: check 'batchml registry history', then retry "
        f"with --expect {_show(now.version)} if the move is still wanted",
    )


def _show(version: object) -> str:
    return "none" if version is None else str(version)


def _record(source: int | None, target: int | None, outcome: str) -> dict[str, Any]:
    return {
        "from": source,
        "to": target,
        "outcome": outcome,
        "user": user_name(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "time": now_iso(),
    }


def history(folder: Path) -> list[dict[str, Any]]:
    """Every move and every refused move of one alias, oldest first."""
    if not folder.is_dir():
        return []
    records = [
        read_json(path)
        for path in folder.glob("*.json")
        if path.stem.isdigit() or path.name.startswith(REJECTED)
    ]
    return sorted(records, key=lambda r: r["time"])
