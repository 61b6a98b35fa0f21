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
from pathlib import Path

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
