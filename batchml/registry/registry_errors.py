"""The errors a registry user can meet, each naming the value, the path and the fix.

They live here rather than in ``batchml.errors`` because only the registry
raises them; they still derive from BatchmlError so the command line reports
them with its one error boundary.
"""

from __future__ import annotations

import errno
from pathlib import Path

from batchml.errors import BatchmlError


class RegistryError(BatchmlError):
    """The registry folder is missing, not a registry, or holds something unexpected."""


class BadReference(RegistryError, ValueError):
    """A model name, alias or URI is malformed (bad input: the command line exits 2)."""

    exit_code = 2


class NotFound(RegistryError, LookupError):
    """The model, version, alias or digest named does not exist (exit 2: the name is wrong)."""

    exit_code = 2


class CorruptVersion(RegistryError):
    """A committed file of a version or attachment no longer matches its manifest or marker."""


class DamagedFile(CorruptVersion, ValueError):
    """A registry file cannot be read as what it should be (not JSON, a field missing).

    A ValueError too, so code that tolerates a torn cache file keeps doing so.
    """

    def __init__(self, path: Path, problem: str, *, hint: str) -> None:
        super().__init__(f"{path} {problem}", hint=hint)
        self.path = path
        self.problem = problem


class AliasConflict(RegistryError):
    """A compare-and-swap alias move lost: the alias no longer points where the caller expected."""


class LockHeld(RegistryError):
    """Another live process holds the registry's garbage-collection lease."""


class StorageError(RegistryError, OSError):
    """The filesystem under the registry refused a read or write (full, read-only, no permission).

    An OSError too, so callers that already handle those keep working.
    """


_CAUSES = {
    errno.ENOSPC: "no space is left on its filesystem",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "its filesystem is mounted read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}
_FULL = (
    "free space there ('batchml registry gc' removes interrupted publishes, "
    "'--keep N' old versions) or raise the quota, then retry"
)
_FIXES = {
    errno.ENOSPC: _FULL,
    errno.EDQUOT: _FULL,
    errno.EROFS: "use a writable registry (--root or $BATCHML_REGISTRY); "
    "a read-only one can still be listed, shown and verified",
}


def storage_error(exc: OSError, action: str, root: Path, *, writing: bool) -> StorageError:
    """``exc`` as one sentence: what was being done, on which path, why, and what to do."""
    where = exc.filename or root
    cause = _CAUSES.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    if exc.errno in (errno.EACCES, errno.EPERM):
        access = "write" if writing else "read"
        fix = (
            f"ask the owner of {root} for {access} access, "
            "or use a registry of your own (--root or $BATCHML_REGISTRY)"
        )
    else:
        fix = _FIXES.get(exc.errno or 0, f"check the registry folder {root}, then retry")
    return StorageError(f"cannot {action}: {cause} ({where})", hint=fix)
