"""The few file operations the registry is built on, safe on NFS, AFS and EOS.

Shared filesystems give weak or no POSIX locks across machines, so nothing here
uses flock or fcntl. What they do give atomically is used instead:

- ``os.replace`` of a file written and fsynced next to its target (a reader
  sees the old content or the new one, never a mix);
- ``os.rename`` of a complete folder to a name that is taken fails (EEXIST or
  ENOTEMPTY: a version folder is never empty) for all but one of many racing
  callers, so the folder appears whole or not at all (a claim);
- ``os.link`` of a complete file to a new name, which likewise fails for all but
  one caller and never exposes half-written content (an exclusive create).

Files are created with mode 0o664 through the user's umask, so never
world-writable, and committed files are made read-only.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from batchml.atomic import fsync_dir, temp_beside, write_new
from batchml.registry.errors import DamagedFile
from batchml.units import is_count

DIR_MODE = 0o775


def create_exclusive(path: Path, data: bytes) -> bool:
    """Create the read-only file ``path`` holding ``data`` unless it exists; False if it does.

    The content is complete before the name appears (a hard link of a synced
    temporary file). On NFS a link reply can be lost after it succeeded, so
    success is judged by the link count of the temporary file, not the reply.
    """
    temp = temp_beside(path)
    write_new(temp, data)
    make_readonly(temp)
    try:
        with contextlib.suppress(FileExistsError):  # any other refusal (a full disk) is raised
            os.link(temp, path)
        linked = os.stat(temp).st_nlink == 2
    finally:
        temp.unlink()
    if linked:
        fsync_dir(path.parent)
    return linked


def claim_by_rename(folder: Path, target: Path) -> bool:
    """Rename the non-empty ``folder`` to ``target``; False if ``target`` is taken already."""
    try:
        os.rename(folder, target)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        raise
    fsync_dir(target.parent)
    return True


def make_dirs(path: Path) -> None:
    """``mkdir -p`` with the registry's folder mode."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def make_readonly(path: Path) -> None:
    """Drop every write permission of a committed file (its folder stays writable for gc)."""
    os.chmod(path, os.stat(path).st_mode & ~0o222)


def dump_json(value: Any) -> bytes:
    """The one JSON encoding of every registry file: sorted keys, so digests are stable."""
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


def read_json(path: Path) -> Any:
    """The JSON in ``path``; DamagedFile names the file when it is not JSON (a torn copy...)."""
    try:
        return json.loads(path.read_bytes())
    except ValueError as exc:
        raise DamagedFile(
            path,
            f"is not valid JSON ({exc})",
            hint="restore it from a copy of the registry (an interrupted copy: run it again)",
        ) from None


def owner_is_gone(tag: str, age_s: float, grace_s: float) -> bool:
    """Whether the writer named by an ``owner_tag`` can no longer finish its work.

    On this host a dead pid settles it; for another host only age can tell,
    so the leftover must be older than ``grace_s``.
    """
    host, pid = split_owner(tag)
    if host == socket.gethostname() and pid is not None:
        return not _pid_alive(pid)
    return age_s > grace_s


def split_owner(tag: str) -> tuple[str, int | None]:
    """(host, pid) of an ``owner_tag``; pid is None when the tag is not one."""
    parts = tag.rsplit("-", 2)
    if len(parts) == 3 and is_count(parts[1]):
        return parts[0], int(parts[1])
    return tag, None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError as exc:  # pragma: no cover - platform specific
        return exc.errno != errno.ESRCH
    return True


def age_of(path: Path) -> float:
    """Seconds since ``path`` last changed; 0 if it vanished meanwhile."""
    try:
        return max(0.0, time.time() - os.stat(path).st_mtime)
    except FileNotFoundError:
        return 0.0
