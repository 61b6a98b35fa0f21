"""Which entries go where: ranges of files, their order per epoch, shards, and the split.

Each file is cut into entry ranges of a fixed size; the ranges (not entries) are
shuffled per epoch with a seeded generator and dealt round-robin to the
``world_size * num_workers`` readers, so the shards are disjoint and together
cover every entry exactly once per epoch, whatever the number of workers.
The train/validation split is decided per entry by hashing (file name, entry
number): it never depends on the shuffle seed, the order of reading, the worker
layout or whether the file was read remotely or from the node-local cache, so
the validation set stays the same across every trial of a search.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal, cast, get_args

import numpy as np

from batchml.errors import InvalidValue

SplitSide = Literal["train", "validation"]
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


@dataclass(frozen=True)
class EntryRange:
    """Entries [start, stop) of file number ``file`` (an index into the resolved URL list)."""

    file: int
    start: int
    stop: int


@dataclass(frozen=True)
class Split:
    """Keep the ``side`` of a deterministic split that gives ``fraction`` of entries to train."""

    side: SplitSide
    fraction: float

    @classmethod
    def parse(cls, value: tuple[str, float] | None) -> Split | None:
        if value is None:
            return None
        side, fraction = value
        if side not in get_args(SplitSide) or not 0.0 < float(fraction) < 1.0:
            raise InvalidValue(
                f"split={value!r} is not a side and a training fraction",
                hint="write split=('train', 0.8) or split=('validation', 0.8)",
            )
        return cls(cast(SplitSide, side), float(fraction))

    def keep(self, url: str, entries: np.ndarray) -> np.ndarray:
        """A bool mask over ``entries`` of file ``url``: True for the entries of this side."""
        train = entry_uniform(url, entries) < self.fraction
        return train if self.side == "train" else ~train


def entry_uniform(url: str, entries: np.ndarray) -> np.ndarray:
    """A uniform number in [0, 1) per entry, fixed by (file name, entry) alone (splitmix64)."""
    key = zlib.crc32(PurePosixPath(url).name.encode())
    x = entries.astype(np.uint64) + np.uint64(key << 32)
    with np.errstate(over="ignore"):
        x = x + _MIX[0]
        x = (x ^ (x >> np.uint64(30))) * _MIX[1]
        x = (x ^ (x >> np.uint64(27))) * _MIX[2]
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def make_ranges(entries_per_file: Sequence[int], range_entries: int) -> list[EntryRange]:
    """Every file cut into ranges of at most ``range_entries`` entries, in file order."""
    return [
        EntryRange(file, start, min(start + range_entries, total))
        for file, total in enumerate(entries_per_file)
        for start in range(0, total, range_entries)
    ]


def shard(
    ranges: Sequence[EntryRange],
    *,
    epoch: int,
    seed: int,
    shuffle: bool,
    reader: int,
    readers: int,
) -> list[EntryRange]:
    """The ranges reader number ``reader`` of ``readers`` reads this epoch, in reading order."""
    order = list(ranges)
    if shuffle:
        permutation = np.random.default_rng([seed, epoch]).permutation(len(order))
        order = [order[i] for i in permutation]
    return order[reader::readers]
