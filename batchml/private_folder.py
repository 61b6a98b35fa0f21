"""Folders only the user can enter, made in places other users can write too.

Why: /tmp, a batch node's scratch and project spaces are shared with strangers,
and a fixed name there is one they can take first: a symlink to a folder of
the victim's own (whose files then get overwritten), or a folder of theirs
(which the victim then fills for them, or cannot use). So the folder is made
by ``mkdir`` (which never follows a link), then opened with O_NOFOLLOW and
checked: a folder, the user's, closed to group and others. Anything else is
refused, naming the path and the site field that put it there, never used.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from batchml.errors import BatchmlError


class PrivateFolderError(BatchmlError, PermissionError):
    """A folder batchml needs private to the user cannot be: someone else holds its path."""


def private_folder(path: Path, field: str) -> Path:
    """``path``, made 0700 if missing (its parent must exist); refused unless it is the user's
    own private folder. ``field`` is the site setting it comes from, for the message."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise PrivateFolderError(
            f"{path} cannot be made: {exc.strerror}",
            hint=f"set {field} of the site to a folder that exists and you can write",
        ) from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:  # a symlink (ELOOP), or not a folder (ENOTDIR)
        raise _refused(path, f"is not a folder ({exc.strerror})", field) from None
    try:
        found = os.fstat(fd)
    finally:
        os.close(fd)
    if found.st_uid != os.getuid():
        raise _refused(
            path, f"belongs to uid {found.st_uid}, not to you (uid {os.getuid()})", field
        )
    if found.st_mode & 0o077:
        mode = stat.S_IMODE(found.st_mode)
        raise _refused(path, f"is open to others (mode {mode:04o})", field, f"chmod 700 {path}")
    return path


def _refused(path: Path, why: str, field: str, fix: str | None = None) -> PrivateFolderError:
    return PrivateFolderError(
        f"{path} {why}: batchml will not use it",
        hint=fix
        or f"remove it if it is yours, or set {field} of the site to a folder only you can "
        f"write (another user may have made {path} to catch your files)",
    )
