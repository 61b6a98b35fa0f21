"""The errors a registry user can meet, each naming the value, the path and the fix.

They live here rather than in ``batchml.errors`` because only the registry
raises them; they still derive from BatchmlError so the command line reports
them with its one error boundary.
"""

from __future__ import annotations

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


class AliasConflict(RegistryError):
    """A compare-and-swap alias move lost: the alias no longer points where the caller expected."""


class LockHeld(RegistryError):
    """Another live process holds the registry's garbage-collection lease."""
