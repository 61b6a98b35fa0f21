"""The asyncio pipeline: coroutine callers batched by their event loop, two batches in flight.

Each coroutine appends its row and a loop future. Up to two batches are in
flight: one running on the helper thread, one queued behind it, so the helper
goes from one ONNX Runtime call straight to the next without waiting for the
loop. A batch is sent once half of ``max_batch`` has gathered (or at the end
of the loop iteration that brought the first request), so while the helper
computes one half, the loop wakes the other half's callers and gathers their
next requests. Only the model call runs on the helper: stacking, scaling and
splitting stay on the loop, since any Python on the helper would fight the
loop for the GIL. With one batch in flight the loop and the helper took
turns, and a larger model reached a much smaller share of the batch limit
(BENCHMARKS.md, Inference). A batch quicker than the hop to the helper runs on
the loop instead (inline.py).
"""

from __future__ import annotations

import _thread
import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from batchml.inference.chooser import Chooser
from batchml.inference.runner import BatchRunner, Outcome
from batchml.inference.spec import Result, Row


class LoopQueue:
    """The pending requests of one event loop; touched only from that loop."""

    IN_FLIGHT = 2  # one batch running on the helper, one queued behind it

    def __init__(
        self, pipeline: Pipeline, loop: asyncio.AbstractEventLoop, pinned: bool | None
    ) -> None:
        self.pipeline = pipeline
        self.runner = pipeline.runner
        self.loop = loop
        self.rows: list[Row] = []
        self.futures: list[asyncio.Future[Result]] = []
        self.scheduled = False
        self.in_flight = 0
        self.half = max(1, self.runner.max_batch // 2)
        self.way = Chooser(pinned)

    def submit(self, row: Row) -> asyncio.Future[Result]:
        """A future of ``row``'s result, settled once the batch holding it has run."""
        future: asyncio.Future[Result] = self.loop.create_future()
        self.rows.append(row)
        self.futures.append(future)
        if self.in_flight < self.IN_FLIGHT and len(self.rows) >= self.half:
            self._dispatch()
        elif not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        """End of the loop iteration that brought the first request: send what came."""
        self.scheduled = False
        if self.rows and self.in_flight < self.IN_FLIGHT:
            self._dispatch()

    def _dispatch(self) -> None:
        """Prepare up to ``max_batch`` pending rows here and hand the model call to the helper."""
        count = min(len(self.rows), self.runner.max_batch)
        rows, self.rows = self.rows[:count], self.rows[count:]
        futures, self.futures = self.futures[:count], self.futures[count:]
        if self.runner.inline.quick(count):
            _settle(futures, self.runner.run(rows))
            self._flush_soon()
            return
        try:
            feeds, bad = self.runner.prepare(rows)
        except Exception as exc:
            _settle(futures, [(None, exc)] * count)
            self._flush_soon()
            return
        self.in_flight += 1
        done = self.loop.run_in_executor(self.pipeline.helper(), self.runner.compute, feeds)
        done.add_done_callback(lambda outcome: self._finish(futures, bad, outcome))

    def _flush_soon(self) -> None:
        if self.rows and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._flush)

    def _finish(
        self, futures: list[asyncio.Future[Result]], bad: np.ndarray, outcome: asyncio.Future[Any]
    ) -> None:
        """Queue the next batch first (the helper stays busy), then wake this one's callers."""
        self.in_flight -= 1
        if self.rows:
            self._dispatch()
        error = outcome.exception()
        _settle(
            futures,
            [(None, error)] * len(futures)
            if error is not None
            else self.runner.outcomes(outcome.result(), bad),
        )


class Pipeline:
    """The coroutine side of one session: a queue per event loop, one helper thread for all."""

    def __init__(self, runner: BatchRunner, pinned: bool | None) -> None:
        self.runner = runner
        self.pinned = pinned
        self._queues: dict[asyncio.AbstractEventLoop, LoopQueue] = {}
        self._guard = _thread.allocate_lock()
        self._executor: ThreadPoolExecutor | None = None

    def queue(self, loop: asyncio.AbstractEventLoop) -> LoopQueue:
        """The running loop's queue, made on its first request."""
        return self._queues.get(loop) or self._queues.setdefault(
            loop, LoopQueue(self, loop, self.pinned)
        )

    def helper(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="batchml-inference")
            return self._executor

    def close(self) -> None:
        """Stop the helper thread (a later batch starts a new one)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def _settle(futures: list[asyncio.Future[Result]], outcomes: list[Outcome]) -> None:
    for future, (result, error) in zip(futures, outcomes, strict=True):
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
