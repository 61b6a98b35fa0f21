"""The pipeline's parts: cut language, shuffle buffer, re-batching, bounded prefetch."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from batchml.data.buffer import batched, shuffled
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


def tables(sizes: list[int]) -> Iterator[dict[str, np.ndarray]]:
    start = 0
    for size in sizes:
        yield {"entry": np.arange(start, start + size)}
        start += size


def test_shuffle_buffer_permutes_within_reach_and_batches_are_exact() -> None:
    rng = np.random.default_rng(0)
    out = list(batched(shuffled(tables([70, 5, 130, 40]), 50, rng), 32))
    entries = np.concatenate([t["entry"] for t in out])
    assert sorted(entries) == list(range(245))
    assert entries.tolist() != list(range(245))
    assert [len(t["entry"]) for t in out] == [32] * 7 + [21]


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
