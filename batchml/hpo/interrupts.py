"""Ctrl-C and SIGTERM during a search: the driver stops between two cycles, never inside one.

Why not Python's KeyboardInterrupt wherever it lands: raised in the middle of
a storage write or of the cluster's start, it can cut a journal line, leave
trials RUNNING with nobody to end them, or worker jobs queued with no driver.
And SIGTERM's default ends the process on the spot, leaving worker jobs and
local worker processes behind. So while a search runs, the first SIGINT or
SIGTERM is only noted; the driver acts on it at the top of its next cycle
(within about a second): the trials in flight are recorded as interrupted
(a resume retries them with their parameters, like orphaned ones), the cluster
is closed (worker jobs cancelled, local workers ended, their folders removed),
and the caller gets StudyInterrupted, a KeyboardInterrupt (SIGINT), or
StudyTerminated, a SystemExit with status 143 (SIGTERM). A second signal while
stopping raises at once.

Python lets only the main thread set signal handlers: a study driven from
another thread keeps the process's own handling.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from types import FrameType, TracebackType


@dataclass(frozen=True)
class Stop:
    """Where a search stood when a signal stopped it."""

    signal: signal.Signals
    study_name: str
    ended: int | None = None  # trials that had ended (None: not counted, as after the search)
    n_trials: int = 0
    interrupted: int = 0  # trials in flight, recorded as interrupted

    @property
    def exit_code(self) -> int:
        """The shell's status for a process ended by this signal: 130, 143."""
        return 128 + int(self.signal)

    def describe(self) -> str:
        said = f"study {self.study_name!r} stopped by {self.signal.name}"
        if self.ended is None:
            return said
        return (
            f"{said} with {self.ended} of {self.n_trials} trials ended; {self.interrupted} "
            "in flight recorded as interrupted, to be retried on resume"
        )


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped the search; ``stop`` says where. Run it again to resume."""

    def __init__(self, stop: Stop) -> None:
        super().__init__(
            f"{stop.describe()}: run_study with study_name={stop.study_name!r} resumes it"
        )
        self.stop = stop


class StudyTerminated(SystemExit):
    """SIGTERM stopped the search; uncaught, the process exits with status 143."""

    def __init__(self, stop: Stop) -> None:
        super().__init__(stop.exit_code)
        self.stop = stop


def stopped(stop: Stop) -> StudyInterrupted | StudyTerminated:
    """The exception a caller gets for ``stop``."""
    return StudyInterrupted(stop) if stop.signal == signal.SIGINT else StudyTerminated(stop)


class StopRequests:
    """Notes SIGINT and SIGTERM while a search runs (a context manager); a second raises."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, study_name: str) -> None:
        self.study_name = study_name
        self.signal: signal.Signals | None = None
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self._previous[number] = signal.signal(number, self._note)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for number, handler in self._previous.items():
            # None: a handler not set from Python, which cannot be put back; the default can
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)  # type: ignore[arg-type]

    def _note(self, number: int, frame: FrameType | None) -> None:
        if self.signal is not None:  # asked again while stopping: at once
            raise stopped(Stop(signal.Signals(number), self.study_name))
        self.signal = signal.Signals(number)
