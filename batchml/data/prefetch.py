"""Reading ahead in a background thread, within a stated memory budget.

uproot spends its time in decompression (zlib, lz4, zstd release the GIL) and
waiting for the network; a thread doing that while the consumer trains overlaps
the two. The queue is bounded in bytes, not items: at most ``budget`` bytes of
decoded chunks wait (always at least one, so a chunk larger than the budget
still passes), so a fast reader never holds a whole file in memory.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def idle_thread() -> None:
    """Run the calling thread, and the threads it starts, only on CPU the job leaves idle.

    Reading ahead helps only if it never delays the training step. On a node
    with few cores per GPU, reading at the same priority keeps the training
    thread waiting for a core after each step; at Linux's SCHED_IDLE it gives
    way at once (BENCHMARKS.md, data run 5: prefetch gains more at idle priority).
    Linux schedules idle threads against the rest of their own cgroup (a batch
    job's) or session, not against other users' jobs. Elsewhere, or where the
    kernel refuses, nothing changes.
    """
    if hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


class Prefetcher(Generic[T]):
    """Iterate ``source`` in a daemon thread; exceptions are re-raised in the consumer.

    Closing (or dropping) the iterator stops the thread at its next item.
    idle: run the thread with ``idle_thread``.
    """

    def __init__(
        self, source: Iterable[T], budget: int, size_of: Callable[[T], int], idle: bool = False
    ) -> None:
        self._idle = idle
        self._source = source
        self._budget = budget
        self._size_of = size_of
        self._items: deque[tuple[T, int]] = deque()
        self._queued = 0
        self._done = False
        self._error: BaseException | None = None
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="batchml-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._idle:
            idle_thread()
        items: Iterator[T] | None = None
        try:
            items = iter(self._source)
            for item in items:
                size = self._size_of(item)
                with self._cond:
                    self._cond.wait_for(
                        lambda: self._closed or not self._items or self._queued < self._budget
                    )
                    if self._closed:
                        return
                    self._items.append((item, size))
                    self._queued += size
                    self._cond.notify_all()
        except BaseException as exc:
            self._error = exc
        finally:
            try:  # a generator's clean-up (open files, thread pools) runs now, in this thread
                close = getattr(items, "close", None)
                if close is not None:
                    close()
            except BaseException as exc:
                self._error = self._error or exc
            finally:
                with self._cond:
                    self._done = True
                    self._cond.notify_all()

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._items or self._done)
                    if self._items:
                        item, size = self._items.popleft()
                        self._queued -= size
                        self._cond.notify_all()
                    elif self._error is not None:
                        raise self._error
                    else:
                        return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()
