"""What can go wrong when reading training data, as errors that name the URL, tree and branch.

uproot and the XRootD client report problems as bare ``KeyError``, ``OSError``
or ``[3011]`` status strings, often deep in a traceback; a user on a batch node
needs one line saying which file and branch, and what to do. Each class also
derives from the matching built-in, so ``except FileNotFoundError`` keeps working.
"""

from __future__ import annotations

import base64
import pickle
import re
from collections.abc import Sequence
from typing import Any

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


class UnreadableFileError(DataError, ValueError):
    """The path names something that is not a whole, readable ROOT file.

    A folder, a file of another format, a file shorter than its ROOT header
    says (an interrupted copy), or a basket that does not decompress.
    """

    exit_code = 2


class DataUnreachableError(DataError, ConnectionError):
    """The server did not answer, even after the bounded retries."""


class DataTimeoutError(DataError, TimeoutError):
    """The server answered too slowly, even after the bounded retries."""


_CARRIED = re.compile(r"\[batchml error ([A-Za-z0-9+/=]+)\]")


class CarriedError(DataError):
    """A batchml error raised in a DataLoader worker, on its way to the training process.

    torch does not pickle a worker's exception: it sends its class and its
    formatted traceback, and raises ``cls(traceback_text)`` in the training
    process, so the message becomes 56 lines of traceback and the hint is lost.
    This error's text carries the original, pickled; when torch rebuilds it
    from that text, ``__new__`` returns the original instead (its class,
    message, hint and fields), and the command line prints its one line.
    """

    @classmethod
    def carrying(cls, error: BatchmlError) -> CarriedError:
        payload = base64.b64encode(pickle.dumps(error.detached())).decode()
        carrier: CarriedError = Exception.__new__(cls)  # (not ``cls(...)``: that unpacks)
        BatchmlError.__init__(
            carrier, f"{error.message} [batchml error {payload}]", hint=error.hint
        )
        return carrier

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        found = _CARRIED.search(args[0]) if args and isinstance(args[0], str) else None
        if found is not None:
            return pickle.loads(base64.b64decode(found[1]))
        return super().__new__(cls, *args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (should torch ever pickle worker errors), it is the original again."""
        found = _CARRIED.search(self.message)
        if found is None:
            return super().__reduce__()
        return pickle.loads, (base64.b64decode(found[1]),)
