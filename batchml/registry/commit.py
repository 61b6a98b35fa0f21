"""Publishing: stage everything, claim a number with one rename, annotate, commit last.

The steps, each safe to be interrupted (SIGKILL included) at any point:

1. Write every artifact and the manifest under ``staging/<host>-<pid>-<random>/``
   on the registry's own filesystem, make the files read-only and fsync them,
   and write ``PUBLISHING`` (the owner) beside them.
2. Claim a number by renaming that complete folder to ``versions/N``: the
   rename fails when N is taken (a version folder is never empty), so try
   N+1. The version now exists, but in state PUBLISHING: invisible to readers.
3. Write its notes (description, tags) and move its aliases to N; such moves
   do not count while N is not committed (aliases.py).
4. Write ``COMMITTED`` (with the manifest's sha256) atomically: the version,
   its notes and its aliases become visible together. Remove ``PUBLISHING``.

If step 3 or 4 fails (a full disk, a read-only remount, Ctrl-C), the claimed
folder is buried (a TOMBSTONE, PUBLISHING kept) before the error reaches the
caller, so nothing was published and a retry publishes once. A killed
publisher leaves a staging folder or a PUBLISHING version; gc removes both
once the owner is gone. Numbers are never reused: a removed version keeps its
folder. The states are described in states.py.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchml._fs import (
    claim_by_rename,
    fsync_dir,
    fsync_file,
    make_readonly,
    owner_tag,
    write_atomic,
    write_new,
)
from batchml.registry.layout import Layout
from batchml.registry.lineage import now_iso
from batchml.registry.manifest import (
    FILES,
    MANIFEST,
    MARKER,
    file_table,
    manifest_bytes,
    marker_bytes,
    sha256_bytes,
)
from batchml.registry.on_disk import dump_json, make_dirs
from batchml.registry.states import PUBLISHING, bury, clear


def stage_folder(layout: Layout) -> Path:
    """A fresh staging folder named after its owner, so gc can tell when it is abandoned."""
    folder = layout.staging / owner_tag()
    try:
        make_dirs(folder / FILES)
    except BaseException:  # a full disk can refuse the second folder: leave no first one
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def seal(staged: Path, name: str, record: dict[str, Any]) -> str:
    """Sync and write-protect every staged file, then write the manifest; returns its sha256.

    Shared by versions and attachments: both are pinned by the same manifest.
    """
    files_dir = staged / FILES
    for path in files_dir.rglob("*"):
        if path.is_file():
            fsync_file(path)
            make_readonly(path)
    raw = manifest_bytes(name, file_table(files_dir), record)
    write_new(staged / MANIFEST, raw)
    make_readonly(staged / MANIFEST)
    fsync_dir(staged)
    return sha256_bytes(raw)


def commit(
    layout: Layout,
    name: str,
    staged: Path,
    record: dict[str, Any],
    annotate: Callable[[int], None],
) -> int:
    """Publish the staged folder as the next free version of ``name``; returns its number.

    ``annotate(N)`` writes the notes and moves the aliases of version N while
    it is still invisible; if it fails, or the commit does, the version is
    withdrawn and the error re-raised.
    """
    digest = seal(staged, name, record)
    write_new(staged / PUBLISHING, dump_json({"owner": staged.name, "started": now_iso()}))
    fsync_dir(staged)
    versions = layout.versions(name)
    make_dirs(versions)
    number = max(layout.numbers(name), default=0) + 1
    while not claim_by_rename(staged, versions / str(number)):
        number += 1
    folder = versions / str(number)
    try:
        annotate(number)
        write_atomic(folder / MARKER, marker_bytes(number, digest), mode=0o444)
    except BaseException:
        _withdraw(folder)
        raise
    with contextlib.suppress(OSError):  # COMMITTED decides; a leftover PUBLISHING is ignored
        (folder / PUBLISHING).unlink()
    fsync_dir(folder)
    return number


def _withdraw(folder: Path) -> None:
    """Bury a claimed version whose publish failed; on a full disk, at least free its space.

    Whatever this cannot remove stays invisible (PUBLISHING) and gc finishes it.
    """
    try:
        bury(folder, "its publish failed before the commit")
    except OSError:
        with contextlib.suppress(OSError):
            clear(folder)

