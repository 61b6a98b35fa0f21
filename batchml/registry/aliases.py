"""Aliases (``production``, ``staging``...) with compare-and-swap, without any lock.

An alias is a folder ``aliases/<alias>/`` holding one file per change,
``00000001.json``, ``00000002.json``..., each created exclusively (a hard link
of a complete file): of two writers that read generation g, only one can create
g+1, which is what makes the move a compare-and-swap. The chain of change files
is the alias's append-only history and its truth. ``current.json`` is a cache
of the newest change, replaced atomically after each move so a lookup costs
one read and one ``stat`` (of the next generation, which a reader follows when
the cache lags). A refused move is recorded too, as ``rejected-*.json``.

A publish moves its aliases before it commits its version, so that both
appear together: a move to a version that was never committed (``pending``
says which) does not count, and the alias points where the change before it
did. A damaged version is not skipped: an alias on it names the damage.
"""

from __future__ import annotations

import contextlib
import enum
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from batchml._fs import create_exclusive, owner_tag, write_atomic
from batchml.config.units import is_count
from batchml.registry.lineage import now_iso, user_name
from batchml.registry.on_disk import dump_json, make_dirs, read_json
from batchml.registry.registry_errors import AliasConflict, DamagedFile

CURRENT = "current.json"
_HISTORY_KEYS = {"from", "to", "outcome", "user", "host", "pid", "time"}
REJECTED = "rejected-"


class Expect(enum.Enum):
    """``Expect.ANY``: move the alias whatever it points at now (no compare)."""

    ANY = "any"


@dataclass(frozen=True)
class AliasState:
    """The newest change's generation, and the version the alias points at in effect."""

    generation: int
    version: int | None


Pending = Callable[[int], bool]


def _change_path(folder: Path, generation: int) -> Path:
    return folder / f"{generation:08d}.json"


def _target(path: Path) -> int | None:
    """The version a change file moves the alias to; DamagedFile names a broken one."""
    try:
        change = read_json(path)
    except FileNotFoundError:
        change = None  # a gap in the chain: a change file deleted by hand
    target = change.get("to", False) if isinstance(change, dict) else False
    if target is not None and (isinstance(target, bool) or not isinstance(target, int)):
        raise DamagedFile(
            path,
            "is missing or is not an alias change (no version 'to')",
            hint="restore it from a copy of the registry; the alias cannot be read until then",
        )
    return target


def current(folder: Path, pending: Pending) -> AliasState:
    """Where the alias points now: the cached newest change, followed, minus pending moves."""
    newest = _cached(folder) or _rebuild(folder)
    stale = False
    while (following := _change_path(folder, newest.generation + 1)).exists():
        newest = AliasState(newest.generation + 1, _target(following))
        stale = True
    if stale:
        _cache(folder, newest)
    version, generation = newest.version, newest.generation
    while version is not None and pending(version):  # back to the move before it
        generation -= 1
        version = _target(_change_path(folder, generation)) if generation else None
    return AliasState(newest.generation, version)


def _cached(folder: Path) -> AliasState | None:
    """The cached newest change; None when the cache is missing or torn (it is only a cache)."""
    try:
        cached = read_json(folder / CURRENT)
        generation, version = cached["generation"], cached["version"]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    if isinstance(generation, int) and (version is None or isinstance(version, int)):
        return AliasState(generation, version)
    return None


def _rebuild(folder: Path) -> AliasState:
    """The newest change found by listing the folder (when the cache is missing or torn)."""
    try:
        numbers = [int(p.stem) for p in folder.glob("*.json") if is_count(p.stem)]
    except FileNotFoundError:
        numbers = []
    if not numbers:
        return AliasState(0, None)
    newest = max(numbers)
    return AliasState(newest, _target(_change_path(folder, newest)))


def _cache(folder: Path, state: AliasState) -> None:
    # A read-only reader cannot refresh the cache; the next writer will.
    with contextlib.suppress(OSError):
        write_atomic(folder / CURRENT, dump_json(vars(state)))


def move(
    alias: str,
    folder: Path,
    version: int | None,
    expect: int | Expect | None,
    pending: Pending,
) -> AliasState:
    """Point the alias at ``version`` (None removes it) if it points at ``expect`` now.

    AliasConflict, naming where the alias points instead, when another writer
    moved it first; the refused attempt is recorded in the history either way.
    """
    make_dirs(folder)
    while True:
        now = current(folder, pending)
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
    records = []
    for path in folder.glob("*.json"):
        if is_count(path.stem) or path.name.startswith(REJECTED):
            record = read_json(path)
            if not isinstance(record, dict) or not set(record) >= _HISTORY_KEYS:
                raise DamagedFile(
                    path,
                    f"is not an alias change (it lacks one of {sorted(_HISTORY_KEYS)})",
                    hint="restore it from a copy of the registry",
                )
            records.append(record)
    return sorted(records, key=lambda r: str(r["time"]))
