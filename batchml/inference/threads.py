"""Flat combining: thread callers batched by whichever of them arrives first, on its own thread.

The cost that limits a Python batcher is per-call synchronisation, not the
model: a queue plus a worker thread plus an ``Event`` per call tops out far
below what ONNX Runtime does with the same rows (BENCHMARKS.md, Inference).
So there is no worker: a caller that finds no batch running becomes the
leader, gathers what is pending and runs it on its own thread; the others
block on one pre-acquired lock each, released once with their row (or with
the leadership, when the leader's own row has been served and theirs not).

A batch runs when it holds ``max_batch`` rows, when one scheduling round
brought no new request, or when ``max_delay_s`` has passed since it started
gathering. A lone caller is therefore served at once, at batch 1.
"""

from __future__ import annotations

import _thread
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from batchml.inference.runner import BatchRunner
from batchml.inference.spec import Result, Row


class _Slot:
    """One caller's request: its row, a lock released once, and the outcome."""

    __slots__ = ("error", "lead", "lock", "result", "row")

    def __init__(self, row: Row) -> None:
        self.row = row
        self.lock = _thread.allocate_lock()
        self.lock.acquire()
        self.lead = False
        self.result: Any = None
        self.error: BaseException | None = None


class FlatCombining:
    """Thread-safe: ``serve`` from any number of threads; each gets its own row's result."""

    def __init__(self, runner: BatchRunner, max_delay_s: float) -> None:
        self.runner = runner
        self.max_delay_s = max_delay_s
        self._guard = _thread.allocate_lock()
        self._pending: deque[_Slot] = deque()
        self._leading = False

    def serve(self, row: Row) -> Result:
        """The result for ``row``, computed in a batch with whatever other threads submit."""
        slot = _Slot(row)
        with self._guard:
            self._pending.append(slot)
            lead = not self._leading
            self._leading = True
        if not lead:
            slot.lock.acquire()  # released with the result, or with the leadership
            lead = slot.lead
        if lead:
            self._lead(slot)
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _lead(self, own: _Slot) -> None:
        """Run batches until ``own`` is served, then pass the leadership on or drop it."""
        max_batch = self.runner.max_batch
        while True:
            self._gather(lambda: len(self._pending))
            with self._guard:
                batch = [self._pending.popleft() for _ in range(min(max_batch, len(self._pending)))]
            outcomes = self.runner.run([s.row for s in batch])
            for slot, (result, error) in zip(batch, outcomes, strict=True):
                slot.result, slot.error = result, error
                if slot is not own:
                    slot.lock.release()
            if own in batch:
                break
        with self._guard:
            if self._pending:
                heir = self._pending[0]
                heir.lead = True
                heir.lock.release()
            else:
                self._leading = False

    def _gather(self, size: Callable[[], int]) -> None:
        """Yield while requests keep arriving, up to ``max_batch`` rows or ``max_delay_s``."""
        deadline = time.perf_counter() + self.max_delay_s
        seen = size()
        while seen < self.runner.max_batch and time.perf_counter() < deadline:
            time.sleep(0)  # let the threads that are ready submit
            now = size()
            if now == seen:
                return
            seen = now
