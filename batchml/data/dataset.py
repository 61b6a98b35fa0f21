"""RootDataset: ROOT files streamed into PyTorch as ready batches, and a loader that times itself.

A torch ``IterableDataset`` that yields whole batches (use ``batch_size=None``
in the DataLoader, or ``RootDataset.loader()``): rows are batched and shuffled
in numpy by the reading pipeline, which is much cheaper than collating one
sample at a time. Each DataLoader worker of each DDP rank reads its own shard
of entry ranges, so an epoch reads every entry exactly once; call
``set_epoch`` before each epoch, as with DistributedSampler.
This is the only module of ``batchml.data`` that imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, get_args

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from batchml.data.columns import Table
from batchml.data.errors import CarriedError
from batchml.data.loader_stats import LoaderStats, timed
from batchml.data.options import (
    BatchOptions,
    Output,
    PrefetchIn,
    ReaderPriority,
    ReadOptions,
    Retry,
    Selection,
    StreamOptions,
    one_of,
)
from batchml.data.stream import Batch, RootStream
from batchml.errors import BatchmlError, InvalidValue

__all__ = [
    "RootDataset",
    "RootLoader",
]


class RootDataset(IterableDataset[Batch]):
    """Batches of ``features`` (float32, jagged padded) with target, weight and entry number.

    The keywords are those of ``Selection`` (what to read), ``ReadOptions`` (how
    to read) and ``BatchOptions`` (how to batch): see there; ``from_options``
    takes them as one ``StreamOptions``. rank/world_size: the DDP layout
    (default: torch.distributed when initialised, else $RANK/$WORLD_SIZE).
    output: 'torch' tensors or 'numpy' arrays.
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
        pad_value: float = Selection.pad_value,
        split: tuple[str, float] | None = None,
        step_size: int | str = ReadOptions.step_size,
        prefetch: str | None = ReadOptions.prefetch,
        prefetch_in: PrefetchIn = ReadOptions.prefetch_in,
        reader_priority: ReaderPriority = ReadOptions.reader_priority,
        decompression_threads: int = ReadOptions.decompression_threads,
        cache_dir: str | None = None,
        timeout: float | None = None,
        retry: Retry | None = None,
        batch_size: int = BatchOptions.batch_size,
        range_entries: int = BatchOptions.range_entries,
        shuffle: bool = BatchOptions.shuffle,
        shuffle_buffer: int | str = BatchOptions.shuffle_buffer,
        seed: int = BatchOptions.seed,
        rank: int | None = None,
        world_size: int | None = None,
        output: Output = "torch",
    ) -> None:
        selection = Selection(
            features=features,
            target=target,
            weights=weights,
            cut=cut,
            jagged=jagged,
            pad_value=pad_value,
            split=split,
        )
        reading = ReadOptions(
            step_size=step_size,
            prefetch=prefetch,
            prefetch_in=prefetch_in,
            reader_priority=reader_priority,
            decompression_threads=decompression_threads,
            cache_dir=cache_dir,
            timeout=timeout,
            retry=retry or Retry(),
        )
        batching = BatchOptions(
            batch_size=batch_size,
            range_entries=range_entries,
            shuffle=shuffle,
            shuffle_buffer=shuffle_buffer,
            seed=seed,
        )
        options = StreamOptions(
            files=files, tree=tree, selection=selection, reading=reading, batching=batching
        )
        self._set_up(options, rank, world_size, output)

    @classmethod
    def from_options(
        cls,
        options: StreamOptions,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        output: Output = "torch",
    ) -> RootDataset:
        """The dataset of an options object (the keywords of ``RootDataset()``, grouped)."""
        dataset = cls.__new__(cls)
        dataset._set_up(options, rank, world_size, output)
        return dataset

    def _set_up(
        self, options: StreamOptions, rank: int | None, world_size: int | None, output: Output
    ) -> None:
        self.output = one_of("output", output, get_args(Output))
        self.stream = RootStream(options)
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    @property
    def columns(self) -> tuple[str, ...]:
        """Names of the feature matrix's columns (``jet_pt[0]`` ... for jagged branches)."""
        return self.stream.columns

    @property
    def stats(self) -> LoaderStats:
        """Counters summed over every worker process; the loop's timings where it iterates
        this dataset itself or through ``loader()`` (not a plain DataLoader with workers)."""
        return self.stream.counters.snapshot()

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch's shuffle; every rank must set the same epoch."""
        self.epoch = epoch

    def close(self) -> None:
        """End the reading process and drop what was read ahead (also done when dropped)."""
        self.stream.close()

    def loader(self, **kwargs: Any) -> RootLoader:
        """A DataLoader over this dataset (``batch_size=None``) that times its consumer."""
        return RootLoader(self, **kwargs)

    def __iter__(self) -> Iterator[Batch]:
        worker = get_worker_info()
        index, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        rank, world = self._layout()
        reader, readers = rank * workers + index, world * workers
        # a DataLoader worker is a process already: it reads in threads
        tables = self.stream.batches(self.epoch, reader, readers, fork=worker is None)
        if worker is None:  # the training loop itself: time it (a worker's loop is torch's)
            tables = timed(tables, self.stream.counters)
        try:
            for table in tables:
                yield self._convert(table)
        except BatchmlError as exc:
            if worker is None:
                raise
            raise CarriedError.carrying(exc) from None  # (torch rebuilds it from its text)

    def _layout(self) -> tuple[int, int]:
        if self.rank is not None or self.world_size is not None:
            rank, world = self.rank or 0, self.world_size or 1
        elif torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        if not 0 <= rank < world:
            raise InvalidValue(
                f"rank {rank} is outside world_size {world}", hint="use 0 <= rank < world_size"
            )
        return rank, world

    def _convert(self, table: Table) -> Batch:
        columns = (table["features"], table["target"], table["weight"], table["entry"])
        if self.output == "numpy":
            return Batch(*columns)
        return Batch(*(torch.from_numpy(np.ascontiguousarray(c)) for c in columns))


class RootLoader:
    """A DataLoader of a RootDataset that records how long the loop waited and worked.

    ``wait_s`` is the time spent inside ``next()``, ``consume_s`` the time from
    handing a batch out until the next one was asked for (the training step).
    Without workers the dataset, iterated in this process, times itself.
    """

    def __init__(self, dataset: RootDataset, **kwargs: Any) -> None:
        self.dataset = dataset
        self.dataloader: DataLoader[Batch] = DataLoader(dataset, batch_size=None, **kwargs)

    @property
    def stats(self) -> LoaderStats:
        return self.dataset.stats

    def __iter__(self) -> Iterator[Batch]:
        batches = iter(self.dataloader)
        if self.dataloader.num_workers == 0:
            return batches
        return timed(batches, self.dataset.stream.counters)
