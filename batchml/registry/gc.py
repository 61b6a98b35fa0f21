"""Garbage collection: the one registry operation that deletes, so the one that locks.

It removes what interrupted publishers left (staging folders, versions still
PUBLISHING) once their owner is provably gone (a dead pid on this host, else
older than ``grace_s``), and, when asked, every version except the ``keep``
best by a metric. Versions an alias points at, and versions without the
metric, are always kept. A DAMAGED version (states.py) may be a real version
that lost a file, so it is kept and reported unless ``damaged`` asks for its
removal, and even then kept while an alias points at it. A deleted version
keeps its folder with a ``TOMBSTONE`` (written first: readers never see it
half-deleted) so its number is never handed out again. Its attachments go
with it, each marker first; so does an attachment folder without a marker (an
interrupted removal: attachments appear complete, with one rename).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from batchml.registry.layout import TOMBSTONE
from batchml.registry.lease import LeaseLock
from batchml.registry.manifest import MANIFEST, MARKER, Problem
from batchml.registry.on_disk import age_of, owner_is_gone, read_json
from batchml.registry.record import metric_value
from batchml.registry.registry_errors import DamagedFile, LockHeld
from batchml.registry.states import PUBLISHING, State, bury, publish_owner, read_state

if TYPE_CHECKING:  # store.py calls into this module
    from batchml.registry.store import Registry

DAY_S = 86400.0


@dataclass
class GcReport:
    """What a collection removed (or, with ``dry_run``, would remove), and the damage it kept."""

    staging: list[Path] = field(default_factory=list)
    abandoned: list[Path] = field(default_factory=list)
    versions: list[Path] = field(default_factory=list)
    attachments: list[Path] = field(default_factory=list)
    damaged: list[Path] = field(default_factory=list)
    damaged_kept: list[Problem] = field(default_factory=list)


def collect_garbage(
    registry: Registry,
    *,
    keep: int | None = None,
    metric: str | None = None,
    maximize: bool = False,
    grace_s: float = DAY_S,
    damaged: bool = False,
    dry_run: bool = False,
    lease_s: float = 3600.0,
) -> GcReport:
    """Remove leftovers of interrupted publishes and, with ``keep``, all but the best versions."""
    layout = registry.layout
    report = GcReport()
    with contextlib.ExitStack() as held:
        # A dry run deletes nothing, so it takes no lock (and creates no lock file)
        lock = None if dry_run else held.enter_context(LeaseLock(layout.locks / "gc.lock", lease_s))

        def remove(path: Path, found: list[Path], tombstone: str | None = None) -> None:
            found.append(path)
            if lock is None:
                return
            if not lock.held():
                raise LockHeld(
                    f"lost the gc lease on {lock.path} (held more than {lease_s:.0f} s)",
                    hint="run gc again; pass a longer lease for a very large registry",
                )
            if tombstone is None:
                _discard(path)
            else:
                bury(path, tombstone)

        if layout.staging.is_dir():
            for folder in layout.staging.iterdir():
                if owner_is_gone(folder.name, age_of(folder), grace_s):
                    remove(folder, report.staging)
        for leftover in layout.locks.glob("gc.lock.*") if lock is not None else ():
            if owner_is_gone(leftover.name.split(".", 2)[-1], age_of(leftover), grace_s):
                leftover.unlink(missing_ok=True)
        for name in registry.models():
            _sweep_versions(registry, name, remove, report, grace_s, damaged, dry_run)
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


def _sweep_versions(
    registry: Registry,
    name: str,
    remove: Callable[[Path, list[Path], str], None],
    report: GcReport,
    grace_s: float,
    damaged: bool,
    dry_run: bool,
) -> None:
    """What each state allows gc to do (states.py), for every version of ``name``."""
    layout = registry.layout
    for number in layout.numbers(name):
        state = read_state(layout.version(name, number), number)
        folder = state.folder
        if state.state is State.REMOVED:
            if any(p.name not in (TOMBSTONE, PUBLISHING) for p in folder.iterdir()):
                remove(folder, report.abandoned, "interrupted gc finished")
        elif state.state is State.PUBLISHING:
            if owner_is_gone(publish_owner(folder), age_of(folder / PUBLISHING), grace_s):
                remove(folder, report.abandoned, "publish interrupted before its commit")
        elif state.state is State.COMMITTED and not dry_run:
            # Left by a publish killed between its commit and its cleanup. COMMITTED decides,
            # but should a bad copy ever lose COMMITTED, this would pass for a live publish.
            (folder / PUBLISHING).unlink(missing_ok=True)
        elif state.problem is not None:
            if damaged and number not in registry.aliases(name).values():
                remove(folder, report.damaged, f"damaged: {state.problem.render()}")
            else:
                report.damaged_kept.append(state.problem)


def _beyond_keep(
    registry: Registry, name: str, keep: int, metric: str | None, maximize: bool
) -> list[int]:
    """Committed versions outside the ``keep`` best (newest when no metric), unaliased.

    A version whose manifest cannot be read is not ranked, so it is kept.
    """
    protected = set(registry.aliases(name).values())
    ranked: list[tuple[float, int]] = []
    for number in registry.versions(name):
        if number in protected:
            continue
        if metric is None:
            ranked.append((-number, number))
            continue
        try:
            manifest = read_json(registry.layout.version(name, number) / MANIFEST)
        except DamagedFile:
            continue
        value = metric_value(manifest, metric)
        if value is not None:
            ranked.append((-value if maximize else value, number))
    return [number for _, number in sorted(ranked)[keep:]]


def _discard(folder: Path) -> None:
    """Delete a folder, its commit marker (if it has one) first, so no reader trusts the rest."""
    (folder / MARKER).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
