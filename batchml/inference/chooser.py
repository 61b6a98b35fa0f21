"""Whether callers batch or call the model directly, measured while they are served.

Which way is faster depends on the model and on how busy the machine is: on
a quiet machine direct calls can win even for a larger MLP, under load
batching wins (BENCHMARKS.md, Inference). So a ``Chooser`` serves the callers
a short window each way, keeps the way that completed more calls per second,
and tries both again after a hold. BatchedSession keeps one for its thread
callers and one per event loop for its coroutines.
"""

from __future__ import annotations

import _thread
import math
import time
from collections.abc import Callable
from typing import Literal

Phase = Literal["hold", "direct", "batched"]


class Chooser:
    """The way callers go, re-measured while they are served.

    After each hold the callers are served ``WINDOW_S`` each way and the way
    that completed more calls per second is kept; batching must win by
    ``MARGIN`` (it adds latency). A window with fewer than ``BUSY`` calls means
    low load, where batching cannot pay: calls go direct. A hold starts at
    ``FIRST_HOLD_S`` and doubles up to ``HOLD_S`` while the same way keeps
    winning, so a choice made on a noisy window (callers still starting, the
    machine busy for a moment) is checked again soon. ``pinned`` fixes the
    way for good (True: batch, False: direct). Counts are read without a lock
    (a lost increment only blurs a rate); one thread at a time closes a window.
    ``clock`` is the time in seconds (a test drives it by hand).
    """

    WINDOW_S = 0.05
    FIRST_HOLD_S = 0.5
    HOLD_S = 2.0
    MARGIN = 1.1
    BUSY = 32

    def __init__(self, pinned: bool | None, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._batched = bool(pinned)
        self._calls = 0
        self._window_end = math.inf if pinned is not None else 0.0
        self._window_start = 0.0
        self._phase: Phase = "hold"
        self._direct_rate = 0.0
        self._hold_s = self.FIRST_HOLD_S
        self._kept: bool | None = None
        self._closing = _thread.allocate_lock()

    def batching(self) -> bool:
        """Count one call and say which way it goes.

        The clock is read every 32 calls only: a read costs a noticeable part of a small call.
        """
        self._calls += 1
        if not self._calls & 31 and self._clock() >= self._window_end:
            self._close_window()
        return self._batched

    def _close_window(self) -> None:
        """Close the window that has ended: start the next trial or settle on a way."""
        if not self._closing.acquire(blocking=False):
            return
        try:
            now = self._clock()
            rate = self._calls / max(now - self._window_start, 1e-9)
            if self._phase == "hold":
                self._open("direct", False, now)
            elif self._phase == "direct":
                self._direct_rate = rate
                if rate * self.WINDOW_S < self.BUSY:
                    self._keep(False, now)
                else:
                    self._open("batched", True, now)
            else:
                self._keep(rate > self.MARGIN * self._direct_rate, now)
        finally:
            self._closing.release()

    def _keep(self, batched: bool, now: float) -> None:
        if batched == self._kept:
            self._hold_s = min(2 * self._hold_s, self.HOLD_S)
        else:
            self._hold_s = self.FIRST_HOLD_S
        self._kept = batched
        self._open("hold", batched, now, self._hold_s)

    def _open(self, phase: Phase, batched: bool, now: float, length: float = WINDOW_S) -> None:
        self._phase, self._batched = phase, batched
        self._calls = 0
        self._window_start, self._window_end = now, now + length
