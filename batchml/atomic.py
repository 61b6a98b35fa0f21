"""Writing a file so that no reader ever sees it half-written, on local and shared filesystems.

Used by everything that leaves files for others to read (registry versions,
packages, job scripts): the content goes to a temporary file beside the target,
is fsynced, and replaces the target with ``os.replace``. No locks: NFS, AFS
and EOS give weak or no POSIX locking across machines, but rename is atomic.
Files are created with mode 0o664 through the user's umask, never world-writable.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import stat
from pathlib import Path
from typing import Literal

from batchml.errors import InvalidValue

FILE_MODE = 0o664  # umask applies; 'other' never gets write permission


def owner_tag() -> str:
    """host-pid-random: unique per writer, and tells gc whose leftover a folder is."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def write_new(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Create ``path`` (which must not exist), write ``data`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or create inside ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some network filesystems refuse fsync on folders; the data is already synced
    finally:
        os.close(fd)


def temp_beside(path: Path) -> Path:
    """A unique name in the same folder (same filesystem, so a rename is atomic)."""
    return path.with_name(f".{path.name}.tmp-{owner_tag()}")


def write_atomic(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data``: written beside it, fsynced, then ``os.replace``d."""
    temp = temp_beside(path)
    try:
        write_new(temp, data, mode)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    fsync_dir(path.parent)


def check_destination(path: Path, kind: Literal["file", "folder"], what: str) -> Path:
    """``path`` when a ``kind`` can be written there; InvalidValue naming ``what`` otherwise.

    Called before the work that produces it starts, so a mistyped destination (a
    folder where a file goes, a path under a file, a folder one may not write)
    fails at once, not after an hour of training, and never replaces something
    that is not a plain file (``-o /dev/null`` would swap the device for a file).
    """
    if path.is_symlink() or path.exists():
        found = path.stat() if path.exists() else path.lstat()
        if kind == "file" and not stat.S_ISREG(found.st_mode):
            thing = "a folder" if stat.S_ISDIR(found.st_mode) else "not a plain file"
            raise InvalidValue(f"{what} {path} is {thing}", hint="give the path of a file to write")
        if kind == "folder" and not stat.S_ISDIR(found.st_mode):
            raise InvalidValue(
                f"{what} {path} exists and is not a folder", hint="give a folder path"
            )
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InvalidValue(
            f"{what} {path} cannot be made: {parent} is not a folder", hint="check the path"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidValue(
            f"{what} {path} cannot be made: you may not write in {parent}",
            hint="choose a folder you can write in",
        )
    return path
