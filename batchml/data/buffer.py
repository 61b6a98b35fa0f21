"""Shuffle buffer and re-batching of numpy tables, with memory bounded by the buffer size.

Shuffling the order of entry ranges mixes files, but entries inside a range stay
in file order (often sorted by run, or by generator). The buffer holds up to
``capacity`` rows; each incoming chunk is mixed with it and the excess leaves
in random order, so every row that leaves was drawn from ``capacity`` rows.
The buffer owns its arrays (it writes into them), so tables given to it must
not be used afterwards.
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


def take(table: Table, selection: np.ndarray | slice) -> Table:
    return {key: column[selection] for key, column in table.items()}


def shuffled(tables: Iterable[Table], capacity: int, rng: np.random.Generator) -> Iterator[Table]:
    """The rows of ``tables`` in random order, holding at most ``capacity`` rows back.

    Once full, each incoming chunk of k rows evicts k rows drawn at random from
    the buffer and takes their places: O(k) work per chunk, not O(capacity).
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
        for key, column in held.items():
            column[places] = table[key]
    if held is not None and rows(held):
        yield take(held, rng.permutation(rows(held)))


def batched(tables: Iterable[Table], size: int) -> Iterator[Table]:
    """Tables cut and joined into batches of exactly ``size`` rows (the last may be smaller)."""
    pending: list[Table] = []
    count = 0
    for table in tables:
        pending.append(table)
        count += rows(table)
        if count < size:
            continue
        joined = concat(pending)
        cut = count - count % size
        for start in range(0, cut, size):
            yield take(joined, slice(start, start + size))
        pending = [take(joined, slice(cut, None))] if cut < count else []
        count -= cut
    if count:
        yield concat(pending)
