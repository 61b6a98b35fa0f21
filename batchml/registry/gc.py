"""Garbage collection: the one registry operation that deletes, so the one that locks.

It removes what interrupted publishers left (staging folders, claimed numbers
never committed) once their owner is provably gone (a dead pid on this host,
else older than ``grace_s``), and, when asked, every version except the
``keep`` best by a metric. Versions an alias points at, and versions without
the metric, are always kept. A deleted version keeps its folder with a
``TOMBSTONE`` so its number is never handed out again; its marker is removed
first, so readers never see it half-deleted. Its attachments go with it, each
marker first too; so does an attachment folder without a marker (an
interrupted removal: attachments appear complete, with one rename).
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from batchml.atomic import write_atomic
from batchml.registry.atomic import age_of, dump_json, owner_is_gone, read_json
from batchml.registry.errors import LockHeld
from batchml.registry.layout import TOMBSTONE
from batchml.registry.lease import LeaseLock
from batchml.registry.manifest import MANIFEST, MARKER
from batchml.registry.publish import CLAIMING
from batchml.registry.record import metric_value

if TYPE_CHECKING:  # store.py calls into this module
    from batchml.registry.store import Registry

DAY_S = 86400.0


@dataclass
class GcReport:
    """What a collection removed (or, with ``dry_run``, would remove)."""

    staging: list[Path] = field(default_factory=list)
    abandoned: list[Path] = field(default_factory=list)
    versions: list[Path] = field(default_factory=list)
    attachments: list[Path] = field(default_factory=list)


def collect_garbage(
    registry: Registry,
    *,
    keep: int | None = None,
    metric: str | None = None,
    maximize: bool = False,
    grace_s: float = DAY_S,
    dry_run: bool = False,
    lease_s: float = 3600.0,
) -> GcReport:
    """Remove leftovers of interrupted publishes and, with ``keep``, all but the best versions."""
    layout = registry.layout
    report = GcReport()
    with LeaseLock(layout.locks / "gc.lock", lease_s) as lock:

        def remove(path: Path, found: list[Path], tombstone: str | None = None) -> None:
            found.append(path)
            if dry_run:
                return
            if not lock.held():
                raise LockHeld(
                    f"lost the gc lease on {lock.path} (held more than {lease_s:.0f} s)",
                    hint="run gc again; pass a longer lease for a very large registry",
                )
            if tombstone is None:
                _discard(path)
            else:
                _bury(path, tombstone)

        if layout.staging.is_dir():
            for folder in layout.staging.iterdir():
                if owner_is_gone(folder.name, age_of(folder), grace_s):
                    remove(folder, report.staging)
        for leftover in layout.locks.glob("gc.lock.*"):
            if owner_is_gone(leftover.name.split(".", 2)[-1], age_of(leftover), grace_s):
                leftover.unlink(missing_ok=True)
        for name in registry.models():
            uncommitted = []
            for number in layout.numbers(name):
                folder = layout.version(name, number)
                if (folder / TOMBSTONE).exists():
                    if any(p.name != TOMBSTONE for p in folder.iterdir()):
                        remove(folder, report.abandoned, "interrupted gc finished")
                elif not (folder / MARKER).exists():
                    uncommitted.append(number)
            # Read after listing the folders: a claim's note is written before its mkdir.
            in_progress = _claims_in_progress(layout.staging, name, grace_s)
            for number in uncommitted:
                folder = layout.version(name, number)
                if number not in in_progress and not (folder / MARKER).exists():
                    remove(folder, report.abandoned, "publish interrupted before its commit")
            removed: set[int] = set()
            if keep is not None:
                for number in _beyond_keep(registry, name, keep, metric, maximize):
                    if number not in registry.aliases(name).values():  # re-read: aliases move
                        remove(layout.version(name, number), report.versions, "removed by gc")
                        removed.add(number)
            for number in layout.attached_numbers(name):
                gone = number in removed or (layout.version(name, number) / TOMBSTONE).exists()
                for folder in layout.attachment_folders(name, number):
                    if gone or not (folder / MARKER).exists():
                        remove(folder, report.attachments)
                if gone and not dry_run:
                    with contextlib.suppress(OSError):
                        layout.attachments(name, number).rmdir()
    return report


def _claims_in_progress(staging: Path, name: str, grace_s: float) -> set[int]:
    """Version numbers of ``name`` that live publishers are claiming or filling now."""
    numbers = set()
    for note in staging.glob(f"*/{CLAIMING}"):
        if owner_is_gone(note.parent.name, age_of(note.parent), grace_s):
            continue
        with contextlib.suppress(FileNotFoundError, ValueError):
            claim = read_json(note)
            if claim["name"] == name:
                numbers.add(int(claim["version"]))
    return numbers


def _beyond_keep(
    registry: Registry, name: str, keep: int, metric: str | None, maximize: bool
) -> list[int]:
    """Committed versions outside the ``keep`` best (newest when no metric), unaliased."""
    protected = set(registry.aliases(name).values())
    ranked: list[tuple[float, int]] = []
    for number in registry.versions(name):
        if number in protected:
            continue
        if metric is None:
            ranked.append((-number, number))
            continue
        value = metric_value(read_json(registry.layout.version(name, number) / MANIFEST), metric)
        if value is not None:
            ranked.append((-value if maximize else value, number))
    return [number for _, number in sorted(ranked)[keep:]]


def _discard(folder: Path) -> None:
    """Delete a folder, its commit marker (if it has one) first, so no reader trusts the rest."""
    (folder / MARKER).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def _bury(folder: Path, reason: str) -> None:
    """Make a version invisible (marker first), leave a tombstone, delete the rest."""
    (folder / MARKER).unlink(missing_ok=True)
    write_atomic(folder / TOMBSTONE, dump_json({"reason": reason}))
    for entry in folder.iterdir():
        if entry.name == TOMBSTONE:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
