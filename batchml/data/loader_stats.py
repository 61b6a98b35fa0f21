"""The loader measuring itself: is storage the bottleneck, or the model?

``wait_s`` is the time the training loop spent waiting for the next batch and
``consume_s`` the time it spent on the batches it got; a wait fraction near
zero means storage keeps up. Bytes and events are counted where they are read,
which with DataLoader workers is another process, so the counters live in
shared memory that the workers inherit and every process adds to.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import asdict, dataclass, fields
from multiprocessing.context import get_spawning_popen
from typing import Any


@dataclass(frozen=True)
class LoaderStats:
    """One reading of the counters, with the figures people compare derived from them."""

    wait_s: float = 0.0
    consume_s: float = 0.0
    read_s: float = 0.0
    bytes_read: float = 0.0
    events_read: float = 0.0
    events_out: float = 0.0
    batches: float = 0.0

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

    def as_dict(self) -> dict[str, float]:
        """Flat numbers, e.g. for an Optuna trial's user attributes."""
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


_FIELDS = tuple(f.name for f in fields(LoaderStats))


class SharedCounters:
    """LoaderStats counters in shared memory, safe to add to from workers and threads.

    Pickled while starting a worker process, it shares the same memory; pickled
    any other way (say, sent to a dask worker), the copy starts from zero.
    """

    def __init__(self) -> None:
        self._values = multiprocessing.Array("d", len(_FIELDS))

    def add(self, **deltas: float) -> None:
        with self._values.get_lock():
            for name, delta in deltas.items():
                self._values[_FIELDS.index(name)] += delta

    def snapshot(self) -> LoaderStats:
        with self._values.get_lock():
            return LoaderStats(*self._values[:])

    def reset(self) -> None:
        with self._values.get_lock():
            self._values[:] = [0.0] * len(_FIELDS)

    def __getstate__(self) -> dict[str, Any]:
        return {"values": self._values if get_spawning_popen() is not None else None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._values = state["values"] or multiprocessing.Array("d", len(_FIELDS))
