"""Publishing: stage everything, claim a version number, move the content in, commit last.

The steps, each safe to be interrupted (SIGKILL included) at any point:

1. Write every artifact and the manifest under ``staging/<host>-<pid>-<random>/``
   on the registry's own filesystem, make the files read-only and fsync them.
2. Note the number about to be claimed in ``staging/<owner>/CLAIMING`` (so gc
   can tell a claim in progress from an abandoned one), then claim it with
   ``mkdir versions/N``; EEXIST means another writer has it, so try N+1.
   Numbers are never reused: a deleted version leaves a tombstone.
3. Rename ``files/`` and ``manifest.json`` into the claimed folder.
4. Write ``COMMITTED`` (with the manifest's sha256) atomically: only now can
   readers see the version. Leftovers of an interrupted publish are invisible
   to readers and removed by ``gc``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from batchml.atomic import fsync_dir, owner_tag, write_atomic, write_new
from batchml.registry.atomic import claim_dir, dump_json, make_dirs, make_readonly
from batchml.registry.layout import Layout
from batchml.registry.manifest import (
    FILES,
    MANIFEST,
    MARKER,
    file_table,
    manifest_bytes,
    marker_bytes,
    sha256_bytes,
)

CLAIMING = "CLAIMING"


def stage_folder(layout: Layout) -> Path:
    """A fresh staging folder named after its owner, so gc can tell when it is abandoned."""
    folder = layout.staging / owner_tag()
    make_dirs(folder / FILES)
    return folder


def seal(staged: Path, name: str, record: dict[str, Any]) -> str:
    """Sync and write-protect every staged file, then write the manifest; returns its sha256.

    Shared by versions and attachments: both are pinned by the same manifest.
    """
    files_dir = staged / FILES
    for path in files_dir.rglob("*"):
        if path.is_file():
            _fsync_file(path)
            make_readonly(path)
    raw = manifest_bytes(name, file_table(files_dir), record)
    write_new(staged / MANIFEST, raw)
    make_readonly(staged / MANIFEST)
    fsync_dir(staged)
    return sha256_bytes(raw)


def commit(layout: Layout, name: str, staged: Path, record: dict[str, Any]) -> tuple[int, str]:
    """Seal the staged folder and commit it as the next free version; returns (N, digest)."""
    digest = seal(staged, name, record)
    files_dir = staged / FILES
    versions = layout.versions(name)
    make_dirs(versions)
    number = max(layout.numbers(name), default=0) + 1
    while True:
        write_atomic(staged / CLAIMING, dump_json({"name": name, "version": number}))
        if claim_dir(versions / str(number)):
            break
        number += 1
    folder = versions / str(number)
    os.rename(files_dir, folder / FILES)
    os.rename(staged / MANIFEST, folder / MANIFEST)
    fsync_dir(folder)
    write_atomic(folder / MARKER, marker_bytes(number, digest))
    make_readonly(folder / MARKER)
    shutil.rmtree(staged, ignore_errors=True)
    return number, digest


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
