"""Bytes and files: which files a pattern names, opening a tree, and reading entries robustly.

This is the physical layer (as in uproot's Source/Chunk split): it knows URLs,
the XRootD handler, retries and the node-local cache, and hands out awkward
arrays with the entry numbers they came from. What the entries mean (features,
cuts, splits) is decided in ``columns.py``.

uproot reads ``root://`` through fsspec by default, which fails with a byte
``step_size``; its XRootDSource handler works with both forms and maps status
codes to FileNotFoundError/TimeoutError, so it is pinned here.

ZLIB baskets (ROOT's default compression, and the XRootD test files') are
inflated by ISA-L when the ``isal`` package is there: uproot offers it as its
own option, the bytes out are the same, and it reads more events/s than the
standard library's zlib (BENCHMARKS.md, data run 2).
"""

from __future__ import annotations

import glob
import time
from collections import OrderedDict
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from batchml._compat.uproot import inflate_library, set_inflate_library, xrootd_source
from batchml.data import listing, rntuple, xrootd
from batchml.data.diagnosis import as_data_error
from batchml.data.errors import (
    DataFileNotFoundError,
    DataTimeoutError,
    DataUnreachableError,
    TreeNotFoundError,
)

if TYPE_CHECKING:
    import awkward as ak
    import numpy as np

    from batchml.data.cache import NodeCache
    from batchml.data.options import Retry


TREE_CLASSES = ("TTree", "ROOT::RNTuple")


class Chunk(NamedTuple):
    """Entries [start, stop) of one file, and the bytes fetched from storage to get them."""

    arrays: ak.Array | dict[str, np.ndarray]
    start: int
    stop: int
    bytes_read: int


def use_fast_inflate() -> None:
    """Have uproot inflate ZLIB baskets with ISA-L, unless someone chose a library already."""
    import importlib.util

    if inflate_library() == "zlib" and importlib.util.find_spec("isal"):
        set_inflate_library("isal")


def resolve(patterns: Sequence[str]) -> list[str]:
    """Every file the patterns name, in the given order, each once (globs and wildcards sorted)."""
    if any(xrootd.is_remote(p) for p in patterns):
        xrootd.configure_client()  # before the first request: the client's defaults wait 480 s
    urls: list[str] = []
    for pattern in patterns:
        if xrootd.is_remote(pattern):
            found = xrootd.expand(pattern)
        elif glob.has_magic(pattern):
            found = sorted(glob.glob(pattern))
            if not found:
                raise DataFileNotFoundError(f"no file matches {pattern}", hint="check the pattern")
        else:
            found = [pattern]
        urls += [url for url in found if url not in urls]
    if not urls:
        raise DataFileNotFoundError("no input files given", hint="pass at least one path or URL")
    return urls


def origin(url: str, cached: bool) -> str:
    """Where a file's bytes are read from: "local", "cache" (cache_dir's copy) or its server."""
    if not xrootd.is_remote(url):
        return "local"
    return "cache" if cached else xrootd.split_url(url)[0]


@contextmanager
def open_file_trees(url: str) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """Every TTree and RNTuple of a file by name, and what else it holds ("TH1D 'h'")."""
    with _open(url, None, (), timeout=None, cache=None) as file:
        classes = file.classnames(cycle=False)
        names = [k for k, c in classes.items() if c in TREE_CLASSES]
        others = [f"{c} {k!r}" for k, c in classes.items() if c not in TREE_CLASSES]
        yield {name: file[name] for name in names}, others


@contextmanager
def open_tree(
    url: str,
    tree: str,
    branches: Sequence[str] = (),
    *,
    timeout: float | None = None,
    cache: NodeCache | None = None,
) -> Iterator[Any]:
    """The TTree or RNTuple ``tree`` of ``url``, with every failure named by URL and branch."""
    import uproot

    with _open(url, tree, branches, timeout=timeout, cache=cache) as file:
        try:
            found = file[tree]
        except KeyError:
            trees = [k for k, c in file.classnames(cycle=False).items() if c in TREE_CLASSES]
            raise TreeNotFoundError(
                f"no tree {tree!r} in {url} (needed for {', '.join(branches) or 'reading'})",
                hint=f"trees in this file: {', '.join(trees) or 'none'}",
            ) from None
        if not isinstance(found, (uproot.behaviors.TTree.TTree, uproot.behaviors.RNTuple.RNTuple)):
            raise TreeNotFoundError(
                f"{tree!r} in {url} is a {type(found).__name__}, not a TTree or RNTuple",
                hint="name a tree with the tree= argument",
            )
        yield found


@contextmanager
def _open(
    url: str,
    tree: str | None,
    branches: Sequence[str],
    *,
    timeout: float | None,
    cache: NodeCache | None,
) -> Iterator[Any]:
    """uproot's file, through the pinned XRootD handler or the node-local cache."""
    import uproot

    options: dict[str, Any] = {}
    path = url
    if xrootd.is_remote(url):
        if cache is not None:
            path = cache.local_copy(url)
        else:
            options = {"handler": xrootd_source(), "timeout": timeout}
    try:
        file = uproot.open(path, **options)
    except Exception as exc:
        raise as_data_error(exc, url, tree, branches) from exc
    with file:
        yield file


class OpenTrees:
    """Trees kept open between the entry ranges one reader reads (at most ``limit`` files).

    Opening a file costs round trips and the TTree's metadata (BENCHMARKS.md,
    data: figures that were in the data docstrings); a reader that reads several
    ranges of a file opens it once; with prefetch on, they stay open into the
    next epoch. Use as a context manager: everything is closed at the end, and
    a file whose read failed is closed and reopened on the next try.
    """

    def __init__(
        self,
        tree: str,
        branches: Sequence[str],
        *,
        timeout: float | None = None,
        cache: NodeCache | None = None,
        limit: int = 4,
    ) -> None:
        self.tree, self.branches = tree, tuple(branches)
        self.timeout, self.cache, self.limit = timeout, cache, max(1, limit)
        self._open: OrderedDict[str, tuple[ExitStack, Any]] = OrderedDict()

    @contextmanager
    def get(self, url: str) -> Iterator[Any]:
        """The open tree of ``url``; closed and forgotten if the body raises."""
        if url in self._open:
            self._open.move_to_end(url)
            found = self._open[url][1]
        else:
            stack = ExitStack()
            found = stack.enter_context(
                open_tree(url, self.tree, self.branches, timeout=self.timeout, cache=self.cache)
            )
            self._open[url] = (stack, found)
            while len(self._open) > self.limit:
                self._open.popitem(last=False)[1][0].close()
        try:
            yield found
        except Exception:  # not GeneratorExit: a reader that stops early keeps the file
            self.drop(url)
            raise

    def drop(self, url: str) -> None:
        if url in self._open:
            self._open.pop(url)[0].close()

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1][0].close()

    def __enter__(self) -> OpenTrees:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _steps(
    tree: Any,
    branches: Sequence[str],
    start: int,
    stop: int,
    step_size: int | str,
    library: str,
    executor: Executor | None,
) -> Iterator[tuple[Any, int, int]]:
    """(arrays, first entry, stop entry) of each step: uproot's iterate, or rntuple.py's."""
    if listing.is_rntuple(tree):
        yield from rntuple.iterate(
            tree, branches, start, stop, step_size=step_size, library=library, executor=executor
        )
        return
    for arrays, report in tree.iterate(
        list(branches),
        entry_start=start,
        entry_stop=stop,
        step_size=step_size,
        decompression_executor=executor,
        library=library,
        report=True,
    ):
        yield arrays, report.tree_entry_start, report.tree_entry_stop


def read_range(
    url: str,
    tree: str,
    branches: Sequence[str],
    start: int,
    stop: int,
    *,
    step_size: int | str,
    library: str = "ak",
    retry: Retry,
    timeout: float | None = None,
    cache: NodeCache | None = None,
    executor: Executor | None = None,
    trees: OpenTrees | None = None,
) -> Generator[Chunk, None, None]:
    """Entries [start, stop) in chunks; after a dropped connection, reopen and resume.

    ``library`` is uproot's: "np" is faster for flat branches, "ak" reads lists.
    ``trees``: files kept open between calls (else the file is opened and closed here).

    uproot reports which entries each chunk held; on a transient error the file
    is reopened from the first entry not yet yielded, so no entry is lost or
    repeated. Permanent errors (missing file, branch, permission) are raised at once.
    """
    failures, failing_since = 0, 0.0
    while start < stop:
        try:
            opening = (
                trees.get(url)
                if trees is not None
                else open_tree(url, tree, branches, timeout=timeout, cache=cache)
            )
            with opening as opened:
                source = opened.file.source
                seen = source.num_requested_bytes
                for arrays, first, end in _steps(
                    opened, branches, start, stop, step_size, library, executor
                ):
                    fetched, seen = source.num_requested_bytes - seen, source.num_requested_bytes
                    start, failures = end, 0
                    yield Chunk(arrays, first, end, fetched)
        except Exception as exc:
            error = as_data_error(exc, url, tree, branches)
            transient = isinstance(error, (DataUnreachableError, DataTimeoutError))
            failures += 1
            failing_since = failing_since if failures > 1 else time.monotonic()
            out_of_time = time.monotonic() - failing_since + retry.delay(failures) > retry.deadline
            if not transient or failures >= retry.attempts or out_of_time:
                raise error from exc
            time.sleep(retry.delay(failures))
