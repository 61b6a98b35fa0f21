"""Shuffle buffer and re-batching of numpy tables, with memory bounded by the buffer size.

Shuffling the order of entry ranges mixes files, but entries inside a range stay
in file order (often sorted by run, or by generator). The buffer holds up to
``capacity`` rows; each incoming chunk is mixed with it and the excess leaves
in random order, so every row that leaves was drawn from ``capacity`` rows.
The buffer owns its arrays (it writes into them), so tables given to it must
not be used afterwards.

Cost: rows move as whole rows (a feature-matrix row is one element of a void
view, so a gather or scatter is one ``np.take``/``np.put`` call, several times
faster than fancy indexing of a 2-D array); each chunk is gathered out once and
scattered in once, and batches are contiguous slices (views) of the block that
left, so only the rows straddling two blocks are copied again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from batchml.data.columns import Table


def rows(table: Table) -> int:
    return len(table["entry"])


def concat(tables: list[Table]) -> Table:
    if len(tables) == 1:
        return tables[0]
    return {key: np.concatenate([t[key] for t in tables]) for key in tables[0]}


def _as_rows(column: np.ndarray) -> np.ndarray | None:
    """A 1-D view with one element per row of a C-contiguous 2-D array, else None."""
    if column.ndim == 2 and column.shape[1] and column.flags.c_contiguous:
        return column.view(np.dtype((np.void, column.strides[0]))).reshape(len(column))
    return None


def _gather(column: np.ndarray, index: np.ndarray) -> np.ndarray:
    whole = _as_rows(column)
    if whole is None:
        return np.take(column, index, axis=0)
    return np.take(whole, index).view(column.dtype).reshape(len(index), *column.shape[1:])


def _scatter(column: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    whole, parts = _as_rows(column), _as_rows(values)
    if whole is None or parts is None or whole.dtype != parts.dtype:
        column[index] = values
    else:
        np.put(whole, index, parts)


def take(table: Table, selection: np.ndarray | slice) -> Table:
    """Rows of a table: a slice gives views, an index array a gathered copy."""
    if isinstance(selection, slice):
        return {key: column[selection] for key, column in table.items()}
    return {key: _gather(column, selection) for key, column in table.items()}


def shuffled(tables: Iterable[Table], capacity: int, rng: np.random.Generator) -> Iterator[Table]:
    """The rows of ``tables`` in random order, holding at most ``capacity`` rows back.

    Once full, each incoming chunk of k rows evicts k rows drawn at random from
    the buffer and takes their places: O(k) work per chunk, not O(capacity).
    Every table yielded is a fresh copy, never written to afterwards.
    """
    held: Table | None = None
    for table in tables:
        if held is None or rows(held) < capacity:
            held = table if held is None else concat([held, table])
            excess = rows(held) - capacity
            if excess > 0:
                order = rng.permutation(rows(held))
                yield take(held, order[:excess])
                held = take(held, order[excess:])
            continue
        incoming = rows(table)
        if incoming > capacity:
            yield from shuffled([held, table], capacity + incoming, rng)
            held = None
            continue
        places = rng.choice(capacity, size=incoming, replace=False)
        yield take(held, places)
        if incoming == capacity:  # every row left: the chunk is the buffer (rows are
            held = table  # drawn by place at random, so the arrangement does not matter)
            continue
        for key, column in held.items():
            _scatter(column, places, table[key])
    if held is not None and rows(held):
        yield take(held, rng.permutation(rows(held)))


def batched(tables: Iterable[Table], size: int) -> Iterator[Table]:
    """Tables cut and joined into batches of exactly ``size`` rows (the last may be smaller).

    Batches inside one table are views of it; only a batch made of the end of
    one table and the start of the next is copied.
    """
    pending: list[Table] = []  # fewer than ``size`` rows in all
    count = 0
    for table in tables:
        n, at = rows(table), 0
        if count:
            need = size - count
            if n < need:
                pending.append(table)
                count += n
                continue
            pending.append(take(table, slice(0, need)))
            yield concat(pending)
            pending, count, at = [], 0, need
        whole = at + (n - at) // size * size
        for start in range(at, whole, size):
            yield take(table, slice(start, start + size))
        if whole < n:
            pending, count = [take(table, slice(whole, None))], n - whole
    if count:
        yield concat(pending)
