"""The reading pipeline without torch: files -> entry ranges -> chunks -> shuffled numpy batches.

``RootStream`` is planned once (files resolved, entries counted, branches
checked, so a bad input fails before training starts) and then iterated by any
number of readers; reader ``r`` of ``n`` reads a disjoint shard of the ranges
for the epoch (see ``plan.py``). ``dataset.py`` wraps it for torch.

Memory held per reader, at most: ``prefetch`` bytes of ready batches waiting,
the chunk being decoded (``step_size``) and, with prefetch on, one decoded chunk
read ahead, the next epoch's first chunk, the shuffle buffer (32 MB of rows by
default) plus one batch, and the metadata of up to 4 files kept open (between
ranges and epochs); not the whole file.
With prefetch on, three threads overlap: reading (network and decompression),
turning chunks into shuffled batches, and the consumer; once a reader has read
its epoch, it reads the next epoch's first chunk (``epoch_start.py``). By default
the two reading threads run in a process of their own (``reader_process.py``),
out of the consumer's GIL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from batchml.data import buffer
from batchml.data.cache import NodeCache
from batchml.data.columns import Table, spec_from
from batchml.data.diagnosis import as_data_error
from batchml.data.epoch_start import EpochStart
from batchml.data.loader_stats import SharedCounters, register
from batchml.data.plan import EntryRange, Split, make_ranges, shard
from batchml.data.prefetch import Prefetcher, idle_thread
from batchml.data.reader_process import ReaderProcess, can_fork
from batchml.data.source import (
    Chunk,
    OpenTrees,
    Retry,
    open_tree,
    origin,
    read_range,
    resolve,
    use_fast_inflate,
)
from batchml.errors import InvalidValue
from batchml.units import parse_size

READER_PRIORITIES = ("idle", "normal")
SHUFFLE_BUFFER = "32 MB"
PREFETCH_IN = ("process", "thread")


class Batch(NamedTuple):
    """One batch: features (n, F) float32, target and weight (n,), each entry's global number."""

    features: Any
    target: Any
    weight: Any
    entry: Any


def parse_step_size(value: int | str) -> int | str:
    """Entries (an int) or a memory size ('50 MB'), checked here rather than deep in uproot."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and parse_size(value) > 0:
        return f"{parse_size(value)} B"
    raise InvalidValue(
        f"step_size={value!r} is neither a number of entries nor a size",
        hint="write step_size=100_000 or step_size='50 MB'",
    )


def buffer_rows(value: int | str, row_bytes: int) -> int:
    """Rows of the shuffle buffer: given, or as many as fit in a memory size."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        return parse_size(value) // row_bytes
    raise InvalidValue(
        f"shuffle_buffer={value!r} is neither a number of rows nor a size",
        hint="write shuffle_buffer='32 MB' or shuffle_buffer=300_000 (0: no row buffer)",
    )


def one_of(name: str, value: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else the error that lists them."""
    if value not in choices:
        raise InvalidValue(f"{name}={value!r} is unknown", hint=f"use one of {', '.join(choices)}")
    return value


@dataclass
class FirstChunk:
    """An epoch's first chunk, read before the epoch began, and the files it opened."""

    file: int
    chunk: Chunk
    trees: OpenTrees
    read_s: float

    def close(self) -> None:
        self.trees.close()


class RootStream:
    """A planned read of ROOT files; iterate a shard with ``batches``.

    files: paths, globs, ``root://`` URLs (wildcards expanded by listing the server).
    tree: TTree or RNTuple name. target/weights: branch names (weights default to 1).
    cut: an expression such as ``"njet >= 2 and ht > 300"`` (see ``cut.py``).
    jagged: ``{"jet_pt": 10}`` pads (with ``pad_value``) or clips each list to 10 columns.
    split: ``("train", 0.8)`` or ``("validation", 0.8)``, decided per entry by hash.
    step_size: entries or a size ('50 MB') per uproot read; range_entries: the unit
    that is shuffled and dealt to readers (best a multiple of an entry step_size:
    a range otherwise ends with a short read, and a row buffer scatters it in).
    shuffle_buffer: the row buffer that mixes rows across ranges and files, as a
    memory size (default 32 MB: 32 MB / (4 bytes x (columns + 4)) rows, such as
    333k rows of 20 features, 3 ranges of 100k) or a number of rows (0: rows stay
    in file order within each range). Each epoch draws a new order, fixed by
    (seed, epoch, reader). Larger buffers mix more but cost more CPU: each row is
    gathered from and scattered into it at random (BENCHMARKS.md, data run 6).
    prefetch: bytes of ready batches the reading may hold ahead (None: off).
    prefetch_in: "process" reads in a forked process, out of the training
    process's GIL (see ``reader_process.py``; threads where there is no fork, and
    in DataLoader workers, which are processes already); "thread" in threads.
    reader_priority: with prefetch on, "idle" runs the reading threads only on CPU
    the rest of the job leaves idle (see ``prefetch.idle_thread``); "normal" shares
    it equally, better where other users' work runs beside the job outside any
    cgroup.
    decompression_threads: uproot's decompression pool per reader (0: none).
    cache_dir: copy remote files here once and read them locally (verified).
    timeout/retry: per-request timeout and the bounded retry with resume after a failure.
    """

    def __init__(
        self,
        files: str | Sequence[str],
        tree: str = "events",
        *,
        features: Sequence[str],
        target: str | None = None,
        weights: str | None = None,
        cut: str | None = None,
        jagged: Mapping[str, int] | None = None,
        pad_value: float = 0.0,
        split: tuple[str, float] | None = None,
        batch_size: int = 1024,
        step_size: int | str = "50 MB",
        range_entries: int = 100_000,
        shuffle: bool = True,
        shuffle_buffer: int | str = SHUFFLE_BUFFER,
        seed: int = 0,
        prefetch: str | None = "256 MB",
        prefetch_in: str = "process",
        reader_priority: str = "idle",
        decompression_threads: int = 0,
        cache_dir: str | None = None,
        timeout: float | None = None,
        retry: Retry | None = None,
    ) -> None:
        if batch_size < 1 or range_entries < 1:
            raise InvalidValue(
                f"batch_size={batch_size}, range_entries={range_entries}: sizes must be positive",
                hint="use batch_size >= 1, range_entries >= 1",
            )
        self.tree = tree
        self.spec = spec_from(features, jagged, target, weights, cut, pad_value)
        self.split = Split.parse(split)
        self.batch_size = batch_size
        self.step_size = parse_step_size(step_size)
        self.shuffle, self.seed = shuffle, seed
        self.shuffle_buffer = buffer_rows(shuffle_buffer, _row_bytes(len(self.columns)))
        self.prefetch = parse_size(prefetch) if prefetch else 0
        where = one_of("prefetch_in", prefetch_in, PREFETCH_IN)
        self.in_process = where == "process" and can_fork()
        self.idle = one_of("reader_priority", reader_priority, READER_PRIORITIES) == "idle"
        self.decompression_threads = decompression_threads
        self.timeout = timeout
        self.retry = retry or Retry()
        use_fast_inflate()
        self.urls = resolve([files] if isinstance(files, str) else list(files))
        origins = [origin(url, cached=cache_dir is not None) for url in self.urls]
        labels = list(dict.fromkeys(origins))
        self._origins = [labels.index(o) for o in origins]  # each file's, in counters.origins
        self.counters = SharedCounters(labels)
        register(self, self.counters)
        self.cache = NodeCache(cache_dir, self.counters) if cache_dir else None
        self._lists: frozenset[str] = frozenset()  # branches holding a list per entry
        self.entries = [self._plan_file(url) for url in self.urls]
        self.offsets = np.concatenate([[0], np.cumsum(self.entries)]).astype(np.int64)
        self.ranges = make_ranges(self.entries, range_entries)
        # per reader (reader, readers): the epoch it read last, and the next one's start
        self._last_epoch: dict[tuple[int, int], int] = {}
        self._starts: dict[tuple[int, int], EpochStart[FirstChunk]] = {}
        self._kept: dict[tuple[int, int], OpenTrees] = {}  # open files, their chunk dropped
        self._processes: dict[tuple[int, int], ReaderProcess] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Reads under way stay with this process (a spawned DataLoader worker starts afresh)."""
        return {**self.__dict__, "_last_epoch": {}, "_starts": {}, "_kept": {}, "_processes": {}}

    def drop_read_ahead(self) -> None:
        """Drop the chunks read for the next epochs, here or in the reading processes.

        Waits for reads under way (one retrying a lost server may take as long
        as ``retry.deadline``); the next epoch then reads its first chunk itself,
        from the files kept open. Benchmarks use it so that no entry read before
        their clock starts is used.
        """
        while self._starts:
            key, start = self._starts.popitem()
            first = start.take()
            if first is not None:
                self._kept[key] = first.trees
        for process in self._processes.values():
            if process.alive and not process.busy:  # (one reading an epoch is left alone)
                process.drop()

    def close(self) -> None:
        """End the reading processes; drop the chunks read ahead and close their files."""
        while self._starts:
            self._starts.popitem()[1].discard()
        while self._kept:
            self._kept.popitem()[1].close()
        while self._processes:
            self._processes.popitem()[1].close()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.spec.columns

    @property
    def num_entries(self) -> int:
        return int(self.offsets[-1])

    def _plan_file(self, url: str) -> int:
        branches = self.spec.branches
        with open_tree(url, self.tree, branches, timeout=self.timeout) as tree:
            try:
                self._lists |= self.spec.check(tree, url, self.tree)
                return int(tree.num_entries)
            except Exception as exc:
                raise as_data_error(exc, url, self.tree, branches) from exc

    def batches(
        self, epoch: int, reader: int = 0, readers: int = 1, *, fork: bool = True
    ) -> Iterator[Table]:
        """The batches of shard ``reader`` of ``readers`` for ``epoch``, as numpy tables.

        fork: False reads in threads even with ``prefetch_in="process"``.
        """
        key = (reader, readers)
        if self.prefetch and self.in_process and fork:
            yield from self._process(key).batches(epoch)
            return
        ranges = self._shard(epoch, key)
        # expect the next epoch (set_epoch each epoch), or this one again if it was repeated
        upcoming = epoch if self._last_epoch.get(key) == epoch else epoch + 1
        self._last_epoch[key] = epoch
        first = None
        start = self._starts.pop(key, None)
        if start is not None and start.epoch == epoch:
            first = start.take()
        elif start is not None:
            start.discard()
        # with prefetch on, the read of the next chunk (decompression, network)
        # also overlaps with turning this one into rows, shuffling and batching
        tables: Iterator[Table] = self._tables(
            self._chunks(
                ranges,
                first,
                lambda trees: self._start(upcoming, key, trees),
                self._kept.pop(key, None),
            )
            if self.prefetch
            else self._chunks(ranges, first)
        )
        if self.shuffle and self.shuffle_buffer:
            rng = np.random.default_rng([self.seed, epoch, reader])
            tables = buffer.shuffled(tables, self.shuffle_buffer, rng)
        batches = buffer.batched(tables, self.batch_size)
        if self.prefetch:  # shuffling and batching overlap with the consumer too
            batches = iter(Prefetcher(batches, self.prefetch, _table_bytes, self.idle))
        for table in batches:
            self.counters.add(events_out=buffer.rows(table), batches=1)
            yield table

    def _process(self, key: tuple[int, int]) -> ReaderProcess:
        """The process reading for ``key``, forked now if there is none (or it ended)."""
        process = self._processes.get(key)
        if process is not None and process.alive and not process.busy:
            return process  # (a busy one serves another iteration: it ends with it)
        width = len(self.columns)
        columns: list[tuple[str, np.dtype[Any], tuple[int, ...]]] = [
            ("features", np.dtype(np.float32), (width,)),
            ("target", np.dtype(np.float32), ()),
            ("weight", np.dtype(np.float32), ()),
            ("entry", np.dtype(np.int64), ()),
        ]
        row_bytes = _row_bytes(width)
        slots = max(2, self.prefetch // (row_bytes * self.batch_size))

        def prepare() -> None:  # in the child: the ring is the budget, threads read
            self.prefetch = min(self.prefetch, 4 * row_bytes * self.batch_size)
            self._processes.clear()
            if self.idle:
                idle_thread()

        process = ReaderProcess(
            lambda epoch: self.batches(epoch, *key, fork=False),
            self.drop_read_ahead,
            columns,
            self.batch_size,
            slots,
            prepare,
        )
        self._processes[key] = process
        return process

    def _shard(self, epoch: int, key: tuple[int, int]) -> list[EntryRange]:
        reader, readers = key
        return shard(
            self.ranges,
            epoch=epoch,
            seed=self.seed,
            shuffle=self.shuffle,
            reader=reader,
            readers=readers,
        )

    def _start(self, epoch: int, key: tuple[int, int], trees: OpenTrees) -> None:
        """Begin reading the first chunk of ``epoch`` for reader ``key`` with its open files."""
        ranges = self._shard(epoch, key)
        if not ranges:
            trees.close()
            return
        started = EpochStart(epoch, lambda: self._first_chunk(ranges[0], trees))
        previous = self._starts.pop(key, None)
        self._starts[key] = started
        if previous is not None:
            previous.discard()

    def _first_chunk(self, entry_range: EntryRange, trees: OpenTrees) -> FirstChunk:
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

    def _tables(self, chunks: Iterator[tuple[int, Chunk]]) -> Iterator[Table]:
        """The rows of each chunk that pass the cut and split, as numpy columns.

        With prefetch on, chunks are read in another thread, at most one decoded
        chunk ahead.
        """
        if self.prefetch:
            chunks = iter(Prefetcher(chunks, 1, lambda _: 1, self.idle))
        for file, chunk in chunks:
            began = time.perf_counter()
            url, offset = self.urls[file], int(self.offsets[file])
            table = self.spec.table(chunk.arrays, url, chunk.start, self.split, offset)
            self.counters.add(read_s=time.perf_counter() - began)
            yield table

    def _chunks(
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
            trees = kept if kept is not None else self._open_trees()
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

    def _open_trees(self) -> OpenTrees:
        return OpenTrees(self.tree, self.spec.branches, timeout=self.timeout, cache=self.cache)

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
            library="ak" if self._lists else "np",
            retry=self.retry,
            timeout=self.timeout,
            cache=self.cache,
            executor=executor,
            trees=trees,
        )

    def _count(self, file: int, chunk: Chunk, read_s: float) -> None:
        events = chunk.stop - chunk.start
        self.counters.read(self._origins[file], read_s, chunk.bytes_read, events)


def _row_bytes(width: int) -> int:
    """Bytes of one row of a batch: ``width`` float32 features, target, weight, int64 entry."""
    return 4 * width + 16


def _table_bytes(table: Table) -> int:
    return sum(column.nbytes for column in table.values())
