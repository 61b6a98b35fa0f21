"""One reader's chunks: the entry ranges of its shard read in steps, and the rows they make.

``stream.py`` decides which ranges a reader reads and when (an epoch, the next
epoch's first chunk); this module reads them: through the files the reader
keeps open (``source.OpenTrees``), in uproot's decompression pool, counting what
was read under where it came from (``source.origin``), and turns each chunk into
the rows that pass the cut and split.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from batchml.data.columns import ColumnSpec, Rows
from batchml.data.loader_stats import SharedCounters
from batchml.data.plan import EntryRange, Split
from batchml.data.prefetch import Prefetcher, idle_thread
from batchml.data.source import Chunk, OpenTrees, read_range

if TYPE_CHECKING:
    from batchml.data.cache import NodeCache
    from batchml.data.options import Retry


@dataclass
class FirstChunk:
    """An epoch's first chunk, read before the epoch began, and the files it opened."""

    file: int
    chunk: Chunk
    trees: OpenTrees
    read_s: float

    def close(self) -> None:
        self.trees.close()


@dataclass
class ChunkReader:
    """Reads ranges of the planned files; the same for every reader of a stream.

    urls/offsets: the files and the global number of each one's first entry.
    library: uproot's ("np" for flat branches, "ak" where a branch holds lists).
    step_size: entries, or bytes as uproot takes them ("52428800 B").
    idle: run the reading threads at idle priority (``prefetch.idle_thread``).
    origins: each file's origin, as its index in ``counters.origins``.
    """

    tree: str
    spec: ColumnSpec
    split: Split | None
    urls: list[str]
    offsets: np.ndarray
    library: str
    step_size: int | str
    retry: Retry
    timeout: float | None
    cache: NodeCache | None
    decompression_threads: int
    idle: bool
    counters: SharedCounters
    origins: Sequence[int]

    def open_trees(self) -> OpenTrees:
        return OpenTrees(self.tree, self.spec.branches, timeout=self.timeout, cache=self.cache)

    def first_chunk(self, entry_range: EntryRange, trees: OpenTrees) -> FirstChunk:
        """The range's first chunk, read with (and keeping open) ``trees``."""
        if self.idle:
            idle_thread()
        began = time.perf_counter()
        try:
            with self._decompression() as executor:
                chunks = self._read(entry_range, trees, executor)
                chunk = next(chunks)
                chunks.close()  # the file stays open in ``trees``
        except BaseException:
            trees.close()
            raise
        return FirstChunk(entry_range.file, chunk, trees, time.perf_counter() - began)

    def rows(self, chunks: Iterator[tuple[int, Chunk]], ahead: bool) -> Iterator[Rows]:
        """The rows of each chunk that pass the cut and split, as records (``columns.Rows``).

        ahead: read the chunks in another thread, at most one decoded chunk ahead.
        """
        if ahead:
            chunks = iter(Prefetcher(chunks, 1, lambda _: 1, self.idle))
        for file, chunk in chunks:
            began = time.perf_counter()
            url, offset = self.urls[file], int(self.offsets[file])
            rows = self.spec.rows(chunk.arrays, url, chunk.start, self.split, offset)
            self.counters.add(read_s=time.perf_counter() - began)
            yield rows

    def chunks(
        self,
        ranges: Sequence[EntryRange],
        first: FirstChunk | None = None,
        then: Callable[[OpenTrees], None] | None = None,
        kept: OpenTrees | None = None,
    ) -> Iterator[tuple[int, Chunk]]:
        """The chunks of the ranges in order, each with its file's number.

        first: the first range's first chunk, read already, and its open files.
        then: given the open files once every range has been read (else they
        are closed), so that the next epoch need not open them again.
        kept: files left open by an earlier epoch (when ``first`` is None).
        """
        if first is not None:
            trees = first.trees
        else:
            trees = kept if kept is not None else self.open_trees()
        try:
            with self._decompression() as executor:
                if first is not None:
                    ranges = [replace(ranges[0], start=first.chunk.stop), *ranges[1:]]
                    self._count(first.file, first.chunk, first.read_s)
                    yield first.file, first.chunk
                for entry_range in ranges:
                    began = time.perf_counter()
                    for chunk in self._read(entry_range, trees, executor):
                        self._count(entry_range.file, chunk, time.perf_counter() - began)
                        yield entry_range.file, chunk
                        began = time.perf_counter()
        except BaseException:
            trees.close()
            raise
        if then is None:
            trees.close()
        else:
            then(trees)

    def _decompression(self) -> AbstractContextManager[ThreadPoolExecutor | None]:
        """uproot's decompression pool for one read (none with 0 threads)."""
        if self.decompression_threads:
            return ThreadPoolExecutor(self.decompression_threads)
        return nullcontext()

    def _read(
        self, entry_range: EntryRange, trees: OpenTrees, executor: ThreadPoolExecutor | None
    ) -> Generator[Chunk, None, None]:
        return read_range(
            self.urls[entry_range.file],
            self.tree,
            self.spec.branches,
            entry_range.start,
            entry_range.stop,
            step_size=self.step_size,
            library=self.library,
            retry=self.retry,
            timeout=self.timeout,
            cache=self.cache,
            executor=executor,
            trees=trees,
        )

    def _count(self, file: int, chunk: Chunk, read_s: float) -> None:
        events = chunk.stop - chunk.start
        self.counters.read(self.origins[file], read_s, chunk.bytes_read, events)
