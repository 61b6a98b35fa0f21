"""The loader measuring itself: is storage the bottleneck, or the model?

``wait_s`` is the time the training loop spent waiting for the next batch and
``consume_s`` the time it spent on the batches it got; a wait fraction near
zero means storage keeps up. Only the process that iterates times the loop, so
those two are plain numbers of that process. Bytes and events are counted where
they are read, which with DataLoader workers or a reading process is another
process, so those counters live in shared memory that the readers inherit and
every process adds to. Each counter is added to under one lock, without the
per-item locking of a synchronised array: the loop pays a few attribute adds a
batch (BENCHMARKS.md, "What recording I/O costs a training step").

``process_totals`` sums every stream of this process, dropped ones included:
what an HPO trial process records about its reading (see batchml.hpo.io_profile).
"""

from __future__ import annotations

import multiprocessing
import time
import weakref
from collections.abc import Iterator, Mapping, MutableSequence, Sequence
from dataclasses import asdict, dataclass, field, fields
from multiprocessing.context import get_spawning_popen
from typing import Any, TypeVar, cast

T = TypeVar("T")


@dataclass(frozen=True)
class LoaderStats:
    """One reading of the counters, with the figures people compare derived from them.

    ``bytes_from``: bytes read per origin ("local", "root://host:port", or
    "cache" for the node-local copies of ``cache_dir``); they add up to ``bytes_read``.
    """

    wait_s: float = 0.0
    consume_s: float = 0.0
    read_s: float = 0.0
    bytes_read: float = 0.0
    events_read: float = 0.0
    events_out: float = 0.0
    batches: float = 0.0
    cache_hits: float = 0.0
    cache_copies: float = 0.0
    bytes_from: Mapping[str, float] = field(default_factory=dict)

    @property
    def wait_fraction(self) -> float:
        """Share of the loop's time spent waiting for data (0: storage keeps up)."""
        total = self.wait_s + self.consume_s
        return self.wait_s / total if total else 0.0

    @property
    def events_per_s(self) -> float:
        total = self.wait_s + self.consume_s
        return self.events_read / total if total else 0.0

    @property
    def mb_per_s(self) -> float:
        total = self.wait_s + self.consume_s
        return self.bytes_read / 1e6 / total if total else 0.0

    def __add__(self, other: LoaderStats) -> LoaderStats:
        """Both readings together (two datasets of one process, say)."""
        origins = dict(self.bytes_from)
        for origin, count in other.bytes_from.items():
            origins[origin] = origins.get(origin, 0.0) + count
        sums = {name: getattr(self, name) + getattr(other, name) for name in _NUMBERS}
        return LoaderStats(**sums, bytes_from=origins)

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers (and ``bytes_from``), e.g. for an Optuna trial's user attributes."""
        derived = {
            "wait_fraction": self.wait_fraction,
            "events_per_s": self.events_per_s,
            "mb_per_s": self.mb_per_s,
        }
        return {**asdict(self), **derived}

    def summary(self) -> str:
        return (
            f"{self.events_read:.0f} events read ({self.bytes_read / 1e6:.1f} MB), "
            f"{self.events_out:.0f} kept in {self.batches:.0f} batches; waited "
            f"{self.wait_s:.2f} s for data, spent {self.consume_s:.2f} s on batches "
            f"({100 * self.wait_fraction:.0f}% waiting)"
        )


_NUMBERS = tuple(f.name for f in fields(LoaderStats) if f.name != "bytes_from")
_TIMED = ("wait_s", "consume_s")  # the iterating process's own
_SHARED = tuple(name for name in _NUMBERS if name not in _TIMED)
_INDEX = {name: index for index, name in enumerate(_SHARED)}


class SharedCounters:
    """LoaderStats counters: the shared ones in shared memory, safe to add to from workers
    and threads; ``wait_s`` and ``consume_s`` of the process that iterates (see ``timed``).

    ``origins`` name where bytes come from; ``read`` counts a chunk under one of them.
    Pickled while starting a worker process, it shares the same memory; pickled
    any other way (say, sent to a dask worker), the copy starts from zero.
    """

    def __init__(self, origins: Sequence[str] = ()) -> None:
        self.origins = tuple(origins)
        self._values = multiprocessing.Array("d", len(_SHARED) + len(self.origins))
        self._raw = _unlocked(self._values)
        self.wait_s = self.consume_s = 0.0

    def add(self, **deltas: float) -> None:
        with self._values.get_lock():
            for name, delta in deltas.items():
                self._raw[_INDEX[name]] += delta

    def read(self, origin: int, read_s: float, bytes_read: int, events: int) -> None:
        """One chunk read: its time, its bytes (under ``origins[origin]``) and entries."""
        raw = self._raw
        with self._values.get_lock():
            raw[_INDEX["read_s"]] += read_s
            raw[_INDEX["bytes_read"]] += bytes_read
            raw[_INDEX["events_read"]] += events
            raw[len(_SHARED) + origin] += bytes_read

    def snapshot(self) -> LoaderStats:
        with self._values.get_lock():
            values = self._raw[:]
        shared = dict(zip(_SHARED, values, strict=False))
        origins = dict(zip(self.origins, values[len(_SHARED) :], strict=True))
        return LoaderStats(**shared, wait_s=self.wait_s, consume_s=self.consume_s,
                           bytes_from={k: v for k, v in origins.items() if v})  # fmt: skip

    def reset(self) -> None:
        with self._values.get_lock():
            self._raw[:] = [0.0] * len(self._raw)
        self.wait_s = self.consume_s = 0.0

    def __getstate__(self) -> dict[str, Any]:
        shared = self._values if get_spawning_popen() is not None else None
        return {"values": shared, "origins": self.origins}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.origins = state["origins"]
        size = len(_SHARED) + len(self.origins)
        self._values = state["values"] or multiprocessing.Array("d", size)
        self._raw = _unlocked(self._values)
        self.wait_s = self.consume_s = 0.0


def _unlocked(values: Any) -> MutableSequence[float]:
    """The plain doubles under a synchronised array, added to under its one lock."""
    return cast("MutableSequence[float]", values.get_obj())


def timed(items: Iterator[T], counters: SharedCounters) -> Iterator[T]:
    """``items``, with the time spent in ``next()`` added to ``wait_s`` and the time from
    handing an item out until the next is asked for (the training step) to ``consume_s``.

    Added at every item, so a reading taken mid-loop (a trial's report) is current.
    """
    clock = time.perf_counter
    while True:
        asked = clock()
        try:
            item = next(items)
        except StopIteration:
            counters.wait_s += clock() - asked
            return
        handed = clock()
        counters.wait_s += handed - asked
        yield item
        counters.consume_s += clock() - handed


class _Ledger:
    """Every stream's counters in this process: the live ones, and what the dropped ones read."""

    def __init__(self) -> None:
        self._live: list[weakref.finalize] = []
        self._dropped = LoaderStats()

    def register(self, owner: object, counters: SharedCounters) -> None:
        self._live = [f for f in self._live if f.alive]
        self._live.append(weakref.finalize(owner, self._drop, counters))

    def _drop(self, counters: SharedCounters) -> None:
        self._dropped += counters.snapshot()

    def total(self) -> LoaderStats:
        total = self._dropped
        for live in list(self._live):
            found = live.peek()
            if found is not None:
                total += found[2][0].snapshot()
        return total


_ledger = _Ledger()


def register(owner: object, counters: SharedCounters) -> None:
    """Count ``counters`` in ``process_totals`` (``owner`` is what holds them, e.g. a stream)."""
    _ledger.register(owner, counters)


def process_totals() -> LoaderStats:
    """What every stream created in this process has read and timed so far, dropped ones too."""
    return _ledger.total()
