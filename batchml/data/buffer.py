"""Shuffle buffer and re-batching of numpy tables, with memory bounded by the buffer size.

Shuffling the order of entry ranges mixes files, but entries inside a range stay
in file order (often sorted by run, or by generator). The buffer holds up to
``capacity`` rows; once it is full, rows leave in random order, so every row
that leaves was drawn from ``capacity`` rows.
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
    return len(next(iter(table.values())))


def concat(tables: list[Table]) -> Table:
    if len(tables) == 1:
        return tables[0]
    return {key: np.concatenate([t[key] for t in tables]) for key in tables[0]}


def _as_rows(column: np.ndarray) -> np.ndarray | None:
    """A 1-D void view, one element per row, of a C-contiguous 2-D or record array; else None."""
    if column.ndim == 2 and column.shape[1] and column.flags.c_contiguous:
        return column.view(np.dtype((np.void, column.strides[0]))).reshape(len(column))
    if column.ndim == 1 and column.dtype.names and column.flags.c_contiguous:
        return column.view(np.dtype((np.void, column.dtype.itemsize)))
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


def put(table: Table, places: np.ndarray, rows_in: Table) -> None:
    """Write the rows of ``rows_in`` into ``table`` at ``places``, in place."""
    for key, column in table.items():
        _scatter(column, places, rows_in[key])


def shuffled(tables: Iterable[Table], capacity: int, rng: np.random.Generator) -> Iterator[Table]:
    """The rows of ``tables`` in random order, holding at most ``capacity`` rows back.

    Inside the buffer each row is one record (all its columns side by side):
    a random gather or scatter then touches one place in memory per row, not
    one per column (a large buffer does not fit in the CPU's caches, and these
    misses are most of its cost). Tables are packed on the way in and split
    into contiguous columns on the way out, both sequential copies.
    """
    for block in _shuffled_rows((_packed(t) for t in tables), capacity, rng):
        records = block[ROW]
        yield {name: np.ascontiguousarray(records[name]) for name in records.dtype.names or ()}


ROW = "row"


def _packed(table: Table) -> Table:
    """The table as one column of records."""
    fields = [(name, column.dtype, column.shape[1:]) for name, column in table.items()]
    packed = np.empty(rows(table), dtype=np.dtype(fields))
    for name, column in table.items():
        packed[name] = column
    return {ROW: packed}


def _shuffled_rows(
    tables: Iterable[Table], capacity: int, rng: np.random.Generator
) -> Iterator[Table]:
    """``shuffled`` on tables of any columns.

    Rows leave as soon as the buffer is full, not when the next chunk arrives:
    a full buffer lets as many rows go as the last chunk brought, drawn at
    random, and the next chunk fills the places they left (O(k) work per chunk
    of k rows, not O(capacity)). So the first batch of an epoch waits for
    ``capacity`` rows, not for one chunk more.
    Every table yielded is a fresh copy, never written to afterwards.
    """
    held: Table | None = None  # once full: the buffer, whose ``holes`` rows have left
    filling: list[Table] = []  # before: the tables so far (joined once, when they fill it)
    holes = np.empty(0, dtype=np.int64)
    for table in tables:
        incoming = rows(table)
        if held is not None and len(holes):
            alive = capacity - len(holes)
            if incoming >= capacity:  # more than the buffer: all of it leaves with the chunk
                merged = concat([take(held, _kept(capacity, holes)), table])
                yield take(merged, rng.permutation(rows(merged)))
                held, holes = None, holes[:0]
                continue
            filled = min(incoming, len(holes))
            put(held, holes[:filled], take(table, slice(0, filled)))
            holes = holes[filled:]
            if alive + incoming < capacity:
                continue
            over = incoming - filled  # rows that found no place: displace some at random
            places = rng.choice(capacity, size=min(over + incoming, capacity), replace=False)
            yield take(held, places)
            put(held, places[:over], take(table, slice(filled, None)))
            holes = places[over:]
        else:
            filling.append(table)
            size = sum(rows(t) for t in filling)
            if size < capacity:
                continue
            held, filling = concat(filling), []
            if incoming >= capacity:  # the chunk alone fills the buffer: all of it leaves
                yield take(held, rng.permutation(size))
                held = None
                continue
            leaving = size - capacity + incoming
            order = rng.permutation(size)
            yield take(held, order[:leaving])
            if size > capacity:
                held = take(held, order[size - capacity :])
                order = np.arange(capacity)
                leaving = incoming
            holes = order[:leaving]
    if filling:
        held, holes = concat(filling), holes[:0]
    if held is not None and rows(held):
        kept = _kept(rows(held), holes)
        yield take(held, kept[rng.permutation(len(kept))])


def _kept(size: int, holes: np.ndarray) -> np.ndarray:
    """The places of a buffer of ``size`` that still hold a row."""
    alive = np.ones(size, dtype=bool)
    alive[holes] = False
    return np.flatnonzero(alive)


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
