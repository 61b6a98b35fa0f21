"""The registry's on-disk conventions: its folder mode, its one JSON encoding, and who left what.

The atomic primitives themselves (replace, exclusive create, claims) are
batchml._fs's; what is the registry's own is here. Shared filesystems give weak
or no POSIX locks across machines, so nothing uses flock or fcntl: a leftover
(a staging folder, a lease) is judged by the ``owner_tag`` in its name, and on
another host, where a pid says nothing, by its age.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from batchml.registry.registry_errors import DamagedFile

DIR_MODE = 0o775


def make_dirs(path: Path) -> None:
    """``mkdir -p`` with the registry's folder mode."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


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
    if len(parts) == 3 and parts[1].isdigit():
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
