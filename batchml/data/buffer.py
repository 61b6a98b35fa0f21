"""Shuffle buffer and re-batching of blocks of rows, with memory bounded by the buffer size.

Shuffling the order of entry ranges mixes files, but entries inside a range stay
in file order (often sorted by run, or by generator). The buffer holds up to
``capacity`` rows; once it is full, rows leave in random order, so every row
that leaves was drawn from ``capacity`` rows.
The buffer owns its rows (it writes into them), so blocks given to it must not
be used afterwards.

Cost: the blocks are ``Rows``, one record per row (``columns.py``), made so
where chunks are decoded: a random gather or scatter touches one place in
memory per row, not one per column (a large buffer does not fit in the CPU's
caches, and these misses are most of its cost), and is one ``np.take``/``np.put``
call; nothing is packed into records or split back into columns here. Each
chunk is scattered in once and gathered out once; batches are contiguous slices
(views) of the block that left, so only the rows straddling two blocks are
copied again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from batchml.data.columns import Rows


def take(rows: Rows, selection: np.ndarray | slice) -> Rows:
    """Rows of a block: a slice gives a view, an index array a gathered copy."""
    if isinstance(selection, slice):
        return rows[selection]
    return np.take(_whole(rows), selection).view(rows.dtype)


def put(rows: Rows, places: np.ndarray, values: Rows) -> None:
    """Write ``values`` into ``rows`` at ``places``, in place."""
    np.put(_whole(rows), places, _whole(values))


def _whole(rows: Rows) -> np.ndarray:
    """Rows as opaque bytes, one element each: numpy then moves a row with one copy,
    not field by field (several times faster, for a gather as for a slice)."""
    return rows.view(np.dtype((np.void, rows.dtype.itemsize)))


def shuffled(blocks: Iterable[Rows], capacity: int, rng: np.random.Generator) -> Iterator[Rows]:
    """The rows of ``blocks`` in random order, holding at most ``capacity`` rows back.

    Rows leave as soon as the buffer is full, not when the next block arrives:
    a full buffer lets as many rows go as the last block brought, drawn at
    random, and the next block fills the places they left (O(k) work per block
    of k rows, not O(capacity)). So the first batch of an epoch waits for
    ``capacity`` rows, not for one block more. The buffer fills in place: the
    first blocks are copied in once, in order, and nothing is moved again
    when it becomes full.
    Every block yielded is a fresh copy, never written to afterwards.
    """
    held: Rows | None = None  # made at the first block, of ``capacity`` rows
    count = 0  # held[:count] hold rows, but for the places in ``holes``
    holes = np.empty(0, dtype=np.int64)
    for block in blocks:
        incoming = len(block)
        if incoming >= capacity:  # more than the buffer: all of it leaves with the block
            kept = take(held, _kept(count, holes)) if held is not None else block[:0]
            merged = _joined([kept, block])
            yield take(merged, rng.permutation(len(merged)))
            count, holes = 0, holes[:0]
            continue
        if held is None:
            held = np.empty(capacity, dtype=block.dtype)
        fit = min(incoming, capacity - count)  # while filling: into the free end, in order
        _whole(held)[count : count + fit] = _whole(block[:fit])
        count += fit
        filled = min(incoming - fit, len(holes))  # once full: into the places rows left
        put(held, holes[:filled], block[fit : fit + filled])
        holes = holes[filled:]
        if count < capacity or len(holes):
            continue
        over = incoming - fit - filled  # rows that found no place: displace some at random
        places = rng.choice(capacity, size=min(over + incoming, capacity), replace=False)
        yield take(held, places)
        put(held, places[:over], block[incoming - over :])
        holes = places[over:]
    if held is not None and count:
        kept = _kept(count, holes)
        yield take(held, kept[rng.permutation(len(kept))])


def _kept(size: int, holes: np.ndarray) -> np.ndarray:
    """The places among the first ``size`` of a buffer that still hold a row."""
    alive = np.ones(size, dtype=bool)
    alive[holes] = False
    return np.flatnonzero(alive)


def batched(blocks: Iterable[Rows], size: int) -> Iterator[Rows]:
    """Blocks cut and joined into batches of exactly ``size`` rows (the last may be smaller).

    Batches inside one block are views of it; only a batch made of the end of
    one block and the start of the next is copied.
    """
    pending: list[Rows] = []  # fewer than ``size`` rows in all
    count = 0
    for block in blocks:
        n, at = len(block), 0
        if count:
            need = size - count
            if n < need:
                pending.append(block)
                count += n
                continue
            pending.append(block[:need])
            yield _joined(pending)
            pending, count, at = [], 0, need
        whole = at + (n - at) // size * size
        for start in range(at, whole, size):
            yield block[start : start + size]
        if whole < n:
            pending, count = [block[whole:]], n - whole
    if count:
        yield _joined(pending)


def _joined(blocks: list[Rows]) -> Rows:
    """The blocks as one: the block itself if there is one (a view stays a view)."""
    if len(blocks) == 1:
        return blocks[0]
    return np.concatenate([_whole(block) for block in blocks]).view(blocks[0].dtype)
