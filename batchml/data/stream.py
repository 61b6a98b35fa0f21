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

import functools
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import numpy as np

from batchml.data import buffer
from batchml.data.cache import NodeCache
from batchml.data.chunk_reader import ChunkReader, FirstChunk
from batchml.data.columns import Rows, Table, as_columns, row_dtype, spec_from
from batchml.data.diagnosis import as_data_error
from batchml.data.epoch_start import EpochStart
from batchml.data.loader_stats import SharedCounters, register
from batchml.data.options import StreamOptions, buffer_rows, parse_step_size
from batchml.data.plan import EntryRange, make_ranges, shard
from batchml.data.prefetch import Prefetcher, idle_thread
from batchml.data.reader_process import ReaderProcess, can_fork
from batchml.data.source import OpenTrees, open_tree, origin, resolve, use_fast_inflate

B = TypeVar("B", Table, Rows)  # a batch as columns, or as the rows they are split from


class Batch(NamedTuple):
    """One batch: features (n, F) float32, target and weight (n,), each entry's global number."""

    features: Any
    target: Any
    weight: Any
    entry: Any


class RootStream:
    """A planned read of ROOT files; iterate a shard with ``batches``.

    Planned when made: the files resolved, their entries counted, their branches
    checked (see ``StreamOptions`` and the three objects it holds for each option).
    """

    def __init__(self, options: StreamOptions) -> None:
        self.options = options
        selection, reading, batching = options.selection, options.reading, options.batching
        self.tree = options.tree
        self.spec = spec_from(selection)
        self.batch_size = batching.batch_size
        self.shuffle, self.seed = batching.shuffle, batching.seed
        self.row = row_dtype(len(self.columns))
        self.shuffle_buffer = buffer_rows(batching.shuffle_buffer, self.row.itemsize)
        self.prefetch = reading.prefetch_bytes()
        self.in_process = reading.prefetch_in == "process" and can_fork()
        self.idle = reading.reader_priority == "idle"
        use_fast_inflate()
        files = options.files
        self.urls = resolve([files] if isinstance(files, str) else list(files))
        origins = [origin(url, cached=reading.cache_dir is not None) for url in self.urls]
        labels = list(dict.fromkeys(origins))
        self.counters = SharedCounters(labels)
        register(self, self.counters)
        self.cache = NodeCache(reading.cache_dir, self.counters) if reading.cache_dir else None
        self._lists: frozenset[str] = frozenset()  # branches holding a list per entry
        self.entries = [self._plan_file(url) for url in self.urls]
        self.offsets = np.concatenate([[0], np.cumsum(self.entries)]).astype(np.int64)
        self.ranges = make_ranges(self.entries, batching.range_entries)
        self.reader = ChunkReader(
            tree=self.tree,
            spec=self.spec,
            split=selection.parsed_split(),
            urls=self.urls,
            offsets=self.offsets,
            library="ak" if self._lists else "np",
            step_size=parse_step_size(reading.step_size),
            retry=reading.retry,
            timeout=reading.timeout,
            cache=self.cache,
            decompression_threads=reading.decompression_threads,
            idle=self.idle,
            counters=self.counters,
            origins=[labels.index(o) for o in origins],
        )
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
        timeout = self.options.reading.timeout
        with open_tree(url, self.tree, branches, timeout=timeout) as tree:
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
        else:
            yield from self._read(epoch, key, as_columns)

    def _read(self, epoch: int, key: tuple[int, int], finish: Callable[[Rows], B]) -> Iterator[B]:
        """The shard's batches, each made by ``finish`` from its rows before it waits in
        the read-ahead (a reading process takes the rows as they are)."""
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
        if self.prefetch:
            then = functools.partial(self._start, upcoming, key)
            chunks = self.reader.chunks(ranges, first, then, self._kept.pop(key, None))
        else:
            chunks = self.reader.chunks(ranges, first)
        rows = self.reader.rows(chunks, ahead=bool(self.prefetch))
        if self.shuffle and self.shuffle_buffer:
            rng = np.random.default_rng([self.seed, epoch, key[0]])
            rows = buffer.shuffled(rows, self.shuffle_buffer, rng)
        batches: Iterator[B] = map(finish, buffer.batched(rows, self.batch_size))
        if self.prefetch:  # shuffling and batching overlap with the consumer too
            batches = iter(Prefetcher(batches, self.prefetch, _batch_bytes, self.idle))
        for batch in batches:
            self.counters.add(events_out=len(batch["entry"]), batches=1)
            yield batch

    def _process(self, key: tuple[int, int]) -> ReaderProcess:
        """The process reading for ``key``, forked now if there is none (or it ended)."""
        process = self._processes.get(key)
        if process is not None and process.alive and not process.busy:
            return process  # (a busy one serves another iteration: it ends with it)
        row_bytes = self.row.itemsize
        slots = max(2, self.prefetch // (row_bytes * self.batch_size))

        def prepare() -> None:  # in the child: the ring is the budget, threads read
            self.prefetch = min(self.prefetch, 4 * row_bytes * self.batch_size)
            self._processes.clear()
            if self.idle:
                idle_thread()

        process = ReaderProcess(
            lambda epoch: self._read(epoch, key, lambda rows: rows),
            self.drop_read_ahead,
            self.row,
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
        started = EpochStart(epoch, lambda: self.reader.first_chunk(ranges[0], trees))
        previous = self._starts.pop(key, None)
        self._starts[key] = started
        if previous is not None:
            previous.discard()


def _batch_bytes(batch: Table | Rows) -> int:
    return sum(batch[name].nbytes for name in Batch._fields)
