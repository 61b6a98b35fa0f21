"""What can go wrong when reading training data, as errors that name the URL, tree and branch.

uproot and the XRootD client report problems as bare ``KeyError``, ``OSError``
or ``[3011]`` status strings, often deep in a traceback; a user on a batch node
needs one line saying which file and branch, and what to do. Each class also
derives from the matching built-in, so ``except FileNotFoundError`` keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence

from batchml.errors import BatchmlError


def where(url: str, tree: str | None = None, branches: Sequence[str] = ()) -> str:
    """The place a problem happened, in the words every data error uses."""
    parts = [url]
    if tree is not None:
        parts.append(f"tree {tree!r}")
    if branches:
        parts.append("branches " + ", ".join(branches))
    return ", ".join(parts)


class DataError(BatchmlError):
    """Root of the errors raised while finding, opening or reading ROOT files."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A file, or a glob or XRootD wildcard matching no file."""

    exit_code = 2


class DataPermissionError(DataError, PermissionError):
    """The file exists but this user (or the server's user) may not read it."""

    exit_code = 2


class TreeNotFoundError(DataError, KeyError):
    """The file has no TTree or RNTuple of that name."""

    exit_code = 2


class BranchNotFoundError(DataError, KeyError):
    """A feature, target, weight or cut names a branch the tree does not have."""

    exit_code = 2


class UnsupportedBranchError(DataError, TypeError):
    """A branch holds something other than numbers or one level of lists of numbers."""

    exit_code = 2


class NotRootFileError(DataError, ValueError):
    """A local path given as a ROOT file is a folder, or a file that is not ROOT at all."""

    exit_code = 2


class DataUnreachableError(DataError, ConnectionError):
    """The server did not answer, even after the bounded retries."""


class DataTimeoutError(DataError, TimeoutError):
    """The server answered too slowly, even after the bounded retries."""
