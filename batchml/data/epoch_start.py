"""The next epoch's first chunk, read while the training loop finishes this one.

With prefetch on, the reader ends an epoch before the training loop does: the
last batches wait in the prefetch queue. The loop's first batch of the next
epoch would then wait for a file to open and a whole chunk to be read and
inflated (far longer from EOS over a WAN than over loopback; BENCHMARKS.md,
data run 5), with nothing to overlap it. So when a reader has read its epoch,
it starts reading the first chunk of the epoch it expects next, with the files
it kept open.

At most one chunk and the files it opened are held per reader; a start that
goes unused (another epoch was asked for) is closed. A start belongs to the
process that made it: a DataLoader worker forked afterwards ignores it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Closable(Protocol):
    def close(self) -> None: ...


T = TypeVar("T", bound=Closable)


class EpochStart(Generic[T]):
    """``read()`` running in a thread for ``epoch``; ``take`` it or ``discard`` it.

    A failed read is dropped: the epoch then reads that chunk itself and meets
    the error where it is retried and reported.
    """

    def __init__(self, epoch: int, read: Callable[[], T]) -> None:
        self.epoch = epoch
        self._pid = os.getpid()
        self._result: T | None = None
        self._discarded = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        threading.Thread(
            target=self._run, args=(read,), name="batchml-epoch-start", daemon=True
        ).start()

    def _run(self, read: Callable[[], T]) -> None:
        try:
            result: T | None = read()
        except Exception:
            result = None
        with self._lock:
            if self._discarded and result is not None:
                result.close()
            else:
                self._result = result
        self._done.set()

    def take(self) -> T | None:
        """What was read, waiting for it if need be; None if it failed or is another process's."""
        if os.getpid() != self._pid:
            return None
        self._done.wait()
        return self._result

    def discard(self) -> None:
        """Close what was read, now or when the read ends."""
        if os.getpid() != self._pid:
            return
        with self._lock:
            self._discarded = True
            result, self._result = self._result, None
        if result is not None:
            result.close()
