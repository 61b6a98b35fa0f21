"""A lock for the one registry operation that needs mutual exclusion: garbage collection.

Publishing and alias moves never lock (they rely on atomic creation). Garbage
collection deletes, so two collectors must not run at once. POSIX locks are
unreliable across machines on EOS, AFS and NFS, so the lock is a file created
by hard-linking a complete, unique file to ``locks/<name>.lock``: the link
succeeds for exactly one process. The file holds host, pid and an expiry time;
a lock whose expiry has passed, or whose pid is dead on this host, is stale and
may be broken by renaming it away (also atomic, so two breakers cannot both win).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

from batchml._fs import fsync_dir, owner_tag, write_new
from batchml.registry.on_disk import dump_json, make_dirs, owner_is_gone, read_json
from batchml.registry.registry_errors import LockHeld


class LeaseLock:
    """Exclusive, expiring lock at ``path``; use as ``with LeaseLock(path, lease_s):``."""

    def __init__(self, path: Path, lease_s: float = 3600.0) -> None:
        self.path = path
        self.lease_s = lease_s
        self.tag = owner_tag()
        self._mine = path.with_name(f"{path.name}.{self.tag}")

    def acquire(self) -> None:
        """Take the lock, breaking a stale one; LockHeld names the live holder otherwise."""
        make_dirs(self.path.parent)
        record = {
            "owner": self.tag,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "expires": time.time() + self.lease_s,
        }
        write_new(self._mine, dump_json(record))
        try:
            for _ in range(3):
                with contextlib.suppress(FileExistsError):
                    os.link(self._mine, self.path)
                if os.stat(self._mine).st_nlink == 2:
                    fsync_dir(self.path.parent)
                    return
                self._break_if_stale()
        except BaseException:
            self._mine.unlink(missing_ok=True)
            raise
        holder = self._holder()
        self._mine.unlink(missing_ok=True)
        raise LockHeld(
            f"{self.path} is held by pid {holder.get('pid')} on {holder.get('host')} "
            f"until {time.ctime(float(str(holder.get('expires', 0))))}",
            hint="wait for that garbage collection to finish; a lock of a dead process "
            "is broken automatically once its lease expires",
        )

    def held(self) -> bool:
        """Whether the lock file is still ours (a long run checks before each deletion)."""
        try:
            return os.path.samefile(self.path, self._mine)
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if self.held():
            self.path.unlink(missing_ok=True)
        self._mine.unlink(missing_ok=True)

    def __enter__(self) -> LeaseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _holder(self) -> dict[str, object]:
        try:
            return dict(read_json(self.path))
        except (FileNotFoundError, ValueError):
            return {}

    def _break_if_stale(self) -> None:
        try:
            before = os.stat(self.path)
        except FileNotFoundError:
            return
        holder = self._holder()
        expired = float(str(holder.get("expires", 0))) < time.time()
        if not (expired or owner_is_gone(str(holder.get("owner", "")), 0.0, float("inf"))):
            return
        broken = self.path.with_name(f"{self.path.name}.broken-{self.tag}")
        try:
            os.rename(self.path, broken)
        except FileNotFoundError:
            return  # another process broke it first
        if os.stat(broken).st_ino != before.st_ino:  # a fresh lock replaced the stale one
            with contextlib.suppress(OSError):
                os.link(broken, self.path)
        broken.unlink()
        # The holder's own unique file is left behind; gc removes it with other leftovers.
