"""``BatchRunner``: all that the batching schemes (threads.py, coroutines.py) know of a session.

Rows in, one model call, one outcome per row out, in three steps a scheme may
run on different threads: ``prepare`` (stacking and preprocessing: Python,
which holds the GIL, so it stays with the callers), ``compute`` (the one call
that releases the GIL; timed for the inline rule) and ``outcomes``; ``run``
does all three where a scheme needs no split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchml.inference.events import ModelCall, ModelIO
from batchml.inference.inline import InlineRule
from batchml.inference.spec import Feeds, Row, nan_error

Outcome = tuple[Any, BaseException | None]  # (result, None) or (None, the caller's error)


@dataclass
class BatchRunner:
    """One model call for many callers' rows; a row that cannot be fed fails alone."""

    io: ModelIO
    run_model: ModelCall
    max_batch: int
    inline: InlineRule = field(default_factory=InlineRule)

    def prepare(self, rows: list[Row]) -> tuple[Feeds, np.ndarray]:
        """The stacked, preprocessed feeds of the rows free of NaN, and which rows hold NaN."""
        stacked = [np.stack([r[i] for r in rows]) for i in range(len(self.io.inputs))]
        feeds, bad = self.io.stacked_feeds(stacked)
        if bad.any():
            feeds = {k: v[~bad] for k, v in feeds.items()}
        return feeds, bad

    def compute(self, feeds: Feeds) -> list[np.ndarray]:
        """The model's outputs; the time per row goes to the inline rule."""
        rows = len(next(iter(feeds.values())))
        if not rows:
            return []
        start = time.perf_counter()
        outputs = self.run_model(feeds)
        self.inline.record(rows, time.perf_counter() - start)
        return outputs

    def outcomes(self, outputs: list[np.ndarray], bad: np.ndarray) -> list[Outcome]:
        picked = iter(range(len(bad)))
        return [
            (None, nan_error()) if is_bad else (self.io.pick(outputs, next(picked)), None)
            for is_bad in bad.tolist()
        ]

    def run(self, rows: list[Row]) -> list[Outcome]:
        """Prepare, compute and split in the calling thread; a failed call fails every row."""
        try:
            feeds, bad = self.prepare(rows)
            outputs = self.compute(feeds)
        except Exception as exc:  # the whole batch failed: every caller learns why
            return [(None, exc)] * len(rows)
        return self.outcomes(outputs, bad)
