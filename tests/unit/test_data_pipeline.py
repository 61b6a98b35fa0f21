"""The pipeline's parts: cut language, shuffle buffer, re-batching, bounded prefetch."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from batchml.data.buffer import batched, shuffled
from batchml.data.columns import Rows, as_columns, row_dtype
from batchml.data.cut import Cut
from batchml.data.prefetch import Prefetcher


def test_cut_rewrites_logic_and_chained_comparisons() -> None:
    cut = Cut("njet >= 2 and not 20 < ht < 100 or abs(eta) > 2")
    assert cut.branches == ("eta", "ht", "njet")
    columns = {
        "njet": np.array([1, 2, 3, 1]),
        "ht": np.array([50, 50, 200, 0]),
        "eta": np.array([0.0, 0.0, 0.0, -3.0]),
    }
    assert cut.mask(columns).tolist() == [False, False, True, True]


def tables(sizes: list[int]) -> Iterator[Rows]:
    start = 0
    for size in sizes:
        block = np.empty(size, dtype=[("entry", np.int64)])
        block["entry"] = np.arange(start, start + size)
        yield block
        start += size


def test_shuffle_buffer_permutes_within_reach_and_batches_are_exact() -> None:
    rng = np.random.default_rng(0)
    out = list(batched(shuffled(tables([70, 5, 130, 40]), 50, rng), 32))
    entries = np.concatenate([t["entry"] for t in out])
    assert sorted(entries) == list(range(245))
    assert entries.tolist() != list(range(245))
    assert [len(t["entry"]) for t in out] == [32] * 7 + [21]


def row_tables(sizes: list[int]) -> Iterator[Rows]:
    """Rows whose every field is a function of the entry number, to check rows stay whole."""
    start = 0
    for size in sizes:
        entry = np.arange(start, start + size)
        block = np.empty(size, dtype=row_dtype(3))
        block["features"] = np.column_stack([entry, -entry, 2 * entry])
        block["target"], block["weight"], block["entry"] = entry % 2, entry / 10, entry
        yield block
        start += size


@pytest.mark.parametrize("sizes", [[50] * 6, [70, 5, 130, 40, 50, 50, 3], [200, 10, 50]])
def test_shuffle_buffer_moves_whole_rows_for_any_chunk_size(sizes: list[int]) -> None:
    # chunks smaller than, equal to and larger than the buffer of 50 rows
    def run(seed: int) -> list[dict[str, np.ndarray]]:
        rng = np.random.default_rng(seed)
        return [as_columns(b) for b in batched(shuffled(row_tables(sizes), 50, rng), 32)]

    out, total = run(1), sum(sizes)
    entries = np.concatenate([t["entry"] for t in out])
    assert sorted(entries) == list(range(total)) and entries.tolist() != list(range(total))
    assert [len(t["entry"]) for t in out] == [32] * (total // 32) + [total % 32] * (total % 32 > 0)
    for t in out:
        e = t["entry"]
        np.testing.assert_array_equal(t["features"], np.column_stack([e, -e, 2 * e]))
        np.testing.assert_array_equal(t["target"], e % 2)
        np.testing.assert_array_equal(t["weight"], (e / 10).astype(np.float32))
        assert t["features"].flags.c_contiguous
    again = run(1)
    assert all(
        np.array_equal(a["features"], b["features"]) for a, b in zip(out, again, strict=True)
    )
    assert np.concatenate([t["entry"] for t in run(2)]).tolist() != entries.tolist()


def test_shuffle_buffer_lets_rows_go_once_full_and_holds_no_more_than_its_capacity() -> None:
    # the first batch of an epoch waits for the buffer to fill, not for one chunk more
    pulled: list[int] = []

    def source(sizes: list[int]) -> Iterator[dict[str, np.ndarray]]:
        for table in tables(sizes):
            pulled.append(len(table["entry"]))
            yield table

    for sizes, capacity in (([50, 50, 50], 50), ([30, 30, 30, 30, 7], 50), ([20, 90, 10], 50)):
        pulled.clear()
        out = shuffled(source(sizes), capacity, np.random.default_rng(3))
        left = len(next(out)["entry"])
        assert sum(pulled) == next(i for i in np.cumsum(sizes) if i >= capacity)
        for table in out:
            assert sum(pulled) - left <= capacity  # rows held back, before this table left
            left += len(table["entry"])
        assert left == sum(sizes)


def test_batches_inside_a_table_are_views_and_only_joints_are_copied() -> None:
    blocks = list(tables([100, 100]))
    out = list(batched(iter(blocks), 32))
    assert [len(t["entry"]) for t in out] == [32] * 6 + [8]
    assert all(np.shares_memory(t["entry"], blocks[0]["entry"]) for t in out[:3])
    assert all(np.shares_memory(t["entry"], blocks[1]["entry"]) for t in out[4:])
    assert out[3]["entry"].tolist() == list(range(96, 128))  # the joint: a copy of both ends
    assert not np.shares_memory(out[3]["entry"], blocks[0]["entry"])


def test_prefetch_stays_within_budget_and_reraises() -> None:
    produced = []

    def source() -> Iterator[int]:
        for i in range(100):
            produced.append(i)
            yield i

    items = iter(Prefetcher(source(), budget=30, size_of=lambda _: 10))
    assert next(items) == 0
    time.sleep(0.2)
    # one handed out, at most 3 queued (30 bytes), one produced waiting for room
    assert len(produced) <= 5
    assert list(items) == list(range(1, 100))

    def failing() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(Prefetcher(failing(), budget=100, size_of=lambda _: 1))


def test_closing_the_consumer_stops_the_thread() -> None:
    def endless() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    before = threading.active_count()
    items = iter(Prefetcher(endless(), budget=10, size_of=lambda _: 1))
    next(items)
    items.close()  # type: ignore[attr-defined]
    for _ in range(100):
        if threading.active_count() <= before:
            break
        time.sleep(0.02)
    assert threading.active_count() <= before


def test_prefetch_closes_its_source_when_done_or_closed() -> None:
    closed: list[int] = []

    def source(name: int, count: int) -> Iterator[int]:
        try:
            yield from range(count)
        finally:  # a reader's open files and thread pools are released here
            closed.append(name)

    assert list(Prefetcher(source(1, 5), budget=2, size_of=lambda _: 1)) == list(range(5))
    items = iter(Prefetcher(source(2, 10_000), budget=2, size_of=lambda _: 1))
    next(items)
    items.close()  # type: ignore[attr-defined]
    for _ in range(100):
        if closed == [1, 2]:
            break
        time.sleep(0.02)
    assert closed == [1, 2]
