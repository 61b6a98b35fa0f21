"""The one way batchml writes a file, and the few other file-system primitives it builds on.

Everything that leaves files for others to read (registry versions, packages,
job scripts, reports, caches, the demo's sample) goes through here, and each
primitive is one that NFS, AFS and EOS keep atomic where POSIX locks are weak
or absent across machines:

- ``write_atomic`` / ``replacing``: the content goes to a new file beside the
  target (same folder, so the same filesystem; a name nobody can guess), is
  fsynced, replaces the target with ``os.replace``, and the folder is fsynced:
  a reader sees the old content or the new one, never a mix, even after a crash.
- ``write_new``: exclusive create (O_EXCL) of a complete, fsynced file.
- ``create_exclusive``: a complete read-only file under a name many may race
  for (a hard link: it fails for all but one and never shows half a file).
- ``claim_by_rename``: a complete folder under a name many may race for.
- ``private_folder``: a folder only the user can enter, in a place strangers
  can write too.
- ``check_destination``: a file or folder the user names can be written, checked
  before the work that produces it.

Files are created with mode 0o664 through the user's umask, never world-writable.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from batchml.errors import BatchmlError, InvalidValue

FILE_MODE = 0o664  # umask applies; 'other' never gets write permission


class PrivateFolderError(BatchmlError, PermissionError):
    """A folder batchml needs private to the user cannot be: someone else holds its path."""


def owner_tag() -> str:
    """host-pid-random: unique per writer, and tells gc whose leftover a folder is."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def temp_beside(path: Path) -> Path:
    """A name nobody can guess in the same folder (same filesystem, so a rename is atomic)."""
    return path.with_name(f".{path.name}.tmp-{owner_tag()}")


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


def fsync_file(path: Path) -> None:
    """Make the content of a file written by someone else (a library, by name) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
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


@contextlib.contextmanager
def replacing(path: Path, mode: int = FILE_MODE) -> Iterator[Path]:
    """A new empty file beside ``path`` for a writer that takes a file name (uproot, torch,
    an XRootD copy); when the block ends without an error it replaces ``path`` as
    ``write_atomic`` does, otherwise it is removed and ``path`` is left as it was."""
    temp = temp_beside(path)
    write_new(temp, b"", mode)  # made by us, exclusively: the writer only opens it
    try:
        yield temp
        fsync_file(temp)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    fsync_dir(path.parent)


def make_readonly(path: Path) -> None:
    """Drop every write permission of a committed file (its folder stays writable for gc)."""
    os.chmod(path, os.stat(path).st_mode & ~0o222)


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
    """Rename the non-empty ``folder`` to ``target``; False if ``target`` is taken already.

    A rename onto a non-empty folder fails (EEXIST or ENOTEMPTY), so of many
    racing callers one wins and the folder appears whole or not at all.
    """
    try:
        os.rename(folder, target)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        raise
    fsync_dir(target.parent)
    return True


def private_folder(path: Path, field: str) -> Path:
    """``path``, made 0700 if missing (its parent must exist); refused unless it is the user's
    own private folder. ``field`` is the site setting it comes from, for the message.

    Why: /tmp, a batch node's scratch and project spaces are shared with strangers,
    and a fixed name there is one they can take first: a symlink to a folder of
    the victim's own (whose files then get overwritten), or a folder of theirs
    (which the victim then fills for them, or cannot use). So the folder is made
    by ``mkdir`` (which never follows a link), then opened with O_NOFOLLOW and
    checked: a folder, the user's, closed to group and others. Anything else is
    refused, naming the path and the site field that put it there, never used.
    """
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
