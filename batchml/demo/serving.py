"""The demo's serving check: the package run by ``BatchedSession``, timed, and scored.

The packager's benchmark (benchmark.csv/png) times ONNX Runtime alone per batch
size; this times what a user's code sees: a whole chunk through ``predict_many``
and many threads each asking for one event through ``predict``, which the
session gathers into batches. Scoring the held-out events with the package
also shows that the deployed model (preprocessing included) keeps torch's AUC.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from time import perf_counter

import numpy as np

from batchml.demo.evaluation import roc
from batchml.inference import BatchedSession


@dataclass(frozen=True)
class CallerPoint:
    """``callers`` threads each calling ``predict`` for one event at a time."""

    callers: int
    calls_per_s: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Serving:
    """What the package did on the held-out events."""

    auc: float
    chunk_events_per_s: float
    points: list[CallerPoint]


def serve(
    package: Path,
    features: np.ndarray,
    labels: np.ndarray,
    callers: Sequence[int] = (1, 8, 32),
    seconds: float = 1.0,
) -> Serving:
    """Score ``features`` (raw: the package normalises) in one chunk, then time single events."""
    with BatchedSession(package, intra_op_threads=1) as session:
        start = perf_counter()
        scores = np.asarray(session.predict_many(features)).reshape(-1)
        rate = len(features) / (perf_counter() - start)
        points = [_threads(session, features, n, seconds) for n in callers]
    return Serving(auc=roc(scores, labels).auc, chunk_events_per_s=rate, points=points)


def _threads(
    session: BatchedSession, rows: np.ndarray, callers: int, seconds: float
) -> CallerPoint:
    """Each thread walks its own rows until the deadline, timing every call."""
    deadline = perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(callers)]

    def call(index: int) -> None:
        mine = latencies[index]
        for row in count(index, callers):
            start = perf_counter()
            if start >= deadline:
                return
            session.predict(rows[row % len(rows)])
            mine.append(perf_counter() - start)

    began = perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(call, range(callers)))
    samples = np.concatenate([np.asarray(s) for s in latencies])
    p50, p99 = np.percentile(samples, [50, 99]) * 1e3
    return CallerPoint(callers, len(samples) / (perf_counter() - began), float(p50), float(p99))
