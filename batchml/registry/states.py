"""The four states of a version folder, read from the files it holds, and what each allows.

A claimed version number N is the folder ``versions/N/``. Its files say which
state it is in, so every command can tell what it may do without guessing:

========== ================================= ==========================================
state      files                              who may do what
========== ================================= ==========================================
COMMITTED  ``COMMITTED`` naming N, and         readers use it (``get`` hashes every file
           ``manifest.json``                  first); gc removes it only with ``--keep``
                                              and only when no alias points at it
PUBLISHING ``PUBLISHING``, no ``COMMITTED``   a publish is writing its notes and moving
                                              its aliases: invisible, and alias moves to
                                              it do not count yet; gc removes it (as
                                              REMOVED) once its owner is gone
REMOVED    ``TOMBSTONE``                      nothing: removed by gc or by its own failed
                                              publish; the number is never handed out again
DAMAGED    anything else: ``COMMITTED``       readers name the file, the problem and the
           missing or unreadable, or          fix; nothing deletes it on its own (it may
           ``manifest.json`` missing           be a real version with a file lost in an
                                              interrupted copy); gc removes it only when
                                              asked and no alias points at it
========== ================================= ==========================================

A version never goes from COMMITTED back to PUBLISHING, and a folder never
exists empty: a publish appears as one rename of a complete folder.
"""

from __future__ import annotations

import contextlib
import enum
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from batchml._fs import write_atomic
from batchml.registry.layout import TOMBSTONE
from batchml.registry.manifest import MANIFEST, MARKER, Problem
from batchml.registry.on_disk import dump_json, read_json
from batchml.registry.registry_errors import DamagedFile

PUBLISHING = "PUBLISHING"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RESTORE = (
    "restore it from the copy this registry came from (an interrupted rsync: run it again); "
    "if no copy has it, 'batchml registry gc --damaged' removes the version "
    "once no alias points at it"
)


class State(enum.Enum):
    COMMITTED = "committed"
    PUBLISHING = "publishing"
    REMOVED = "removed"
    DAMAGED = "damaged"


@dataclass(frozen=True)
class VersionState:
    """Version N's state; ``digest`` of a committed one, ``problem`` of a damaged one."""

    number: int
    folder: Path
    state: State
    digest: str = ""
    problem: Problem | None = None


def read_state(folder: Path, number: int) -> VersionState:
    """The state of ``versions/N`` (``folder``): a few stats and one small read, no hashing."""
    if (folder / TOMBSTONE).exists():
        return VersionState(number, folder, State.REMOVED)
    marker = folder / MARKER
    try:
        found = read_json(marker)
    except FileNotFoundError:
        if (folder / PUBLISHING).exists():
            return VersionState(number, folder, State.PUBLISHING)
        why = "missing, so the version is invisible (an interrupted copy, or deleted by hand)"
        return _damaged(number, folder, marker, why)
    except DamagedFile:
        return _damaged(number, folder, marker, "is not valid JSON")
    except NotADirectoryError:
        return _damaged(number, folder, folder, "is a file, not a version folder")
    digest = found.get("manifest_sha256") if isinstance(found, dict) else None
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        return _damaged(number, folder, marker, "holds no manifest sha256")
    if found.get("version") != number:
        return _damaged(number, folder, marker, f"names version {found.get('version')!r}")
    if not (folder / MANIFEST).is_file():
        return _damaged(number, folder, folder / MANIFEST, "missing")
    return VersionState(number, folder, State.COMMITTED, digest=digest)


def _damaged(number: int, folder: Path, path: Path, why: str) -> VersionState:
    return VersionState(number, folder, State.DAMAGED, problem=Problem(path, why, _RESTORE))


def never_visible(folder: Path) -> bool:
    """Whether a publish claimed this folder and never committed it (in progress, or failed).

    An alias move to such a version does not count: the alias still points
    where it did before, so a publish's alias moves take effect with its commit.
    """
    return (folder / PUBLISHING).exists() and not (folder / MARKER).exists()


def publish_owner(folder: Path) -> str:
    """The owner tag of the publish that holds a PUBLISHING folder ('' if unreadable)."""
    try:
        return str(read_json(folder / PUBLISHING)["owner"])
    except (FileNotFoundError, DamagedFile, KeyError, TypeError):
        return ""


def bury(folder: Path, reason: str) -> None:
    """Remove a version for good: the TOMBSTONE first (REMOVED from then on), then the rest.

    PUBLISHING stays when there is one: it records that the version was never
    visible, so alias moves to it never count.
    """
    write_atomic(folder / TOMBSTONE, dump_json({"reason": reason}))
    clear(folder)


def clear(folder: Path) -> None:
    """Delete what a version folder holds but its TOMBSTONE and PUBLISHING (marker first)."""
    (folder / MARKER).unlink(missing_ok=True)
    for entry in folder.iterdir():
        if entry.name in (TOMBSTONE, PUBLISHING):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
