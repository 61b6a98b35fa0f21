"""Latency and throughput of a package per batch size and intra-op thread count.

Whether batching helps depends on the model (onnxruntime#20173): a small MLP
gains far more rows/s from batching than a convolutional tagger does
(BENCHMARKS.md, Inference), and more intra-op threads can make small batches
slower. So the packager measures instead of assuming: for each thread count
and each power of two up to the maximum batch, the p50/p90/p99 latency of one
call and the rows/s, plus the session creation time, the first inference
(graph optimisation, allocation) and the process's peak resident memory.
Written as ``benchmark.csv`` and ``benchmark.png``.
"""

from __future__ import annotations

import csv
import io
import os
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import numpy as np

from batchml._fs import write_atomic
from batchml.errors import BatchmlError, InvalidValue

CSV_NAME = "benchmark.csv"
PLOT_NAME = "benchmark.png"
MIN_CALLS = 5


@dataclass(frozen=True)
class Point:
    """One measured (thread count, batch size); times in milliseconds."""

    intra_op_threads: int
    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    rows_per_s: float
    session_create_ms: float
    first_inference_ms: float
    peak_rss_mb: float


def batch_ladder(max_batch: int) -> list[int]:
    """1, 2, 4, ... and ``max_batch`` itself."""
    sizes = [1 << i for i in range(max_batch.bit_length()) if 1 << i <= max_batch]
    return sorted({*sizes, max_batch})


def thread_counts() -> list[int]:
    """1 and every doubling up to the cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [n for n in (1, 2, 4, 8, 16) if n <= max(1, cores or 1)]


def measure(model: Path, threads: int, sizes: list[int], seconds: float) -> list[Point]:
    """Every batch size for one thread count, in a new session."""
    import onnxruntime as ort

    from batchml.inference.spec import event_shape, onnx_dtype

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    start = time.perf_counter()
    try:
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own kinds (InvalidProtobuf, NoSuchFile, Fail)
        raise InvalidValue(
            f"ONNX Runtime cannot load {model}: {str(exc).strip()}",
            hint="rebuild the package with 'batchml package build'",
        ) from None
    created = time.perf_counter() - start
    inputs = [
        (i.name, event_shape(i.name, i.shape, str(model)), onnx_dtype(i.name, i.type, str(model)))
        for i in session.get_inputs()
    ]

    def feeds(n: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(n)
        return {name: rng.random((n, *shape)).astype(dtype) for name, shape, dtype in inputs}

    start = time.perf_counter()
    session.run(None, feeds(1))
    first = time.perf_counter() - start
    points = []
    for n in sizes:
        batch = feeds(n)
        samples = _timed(partial(session.run, None, batch), seconds)
        p50, p90, p99 = np.percentile(samples, [50, 90, 99])
        points.append(
            Point(
                intra_op_threads=threads,
                batch=n,
                p50_ms=p50 * 1e3,
                p90_ms=p90 * 1e3,
                p99_ms=p99 * 1e3,
                rows_per_s=n / float(np.mean(samples)),
                session_create_ms=created * 1e3,
                first_inference_ms=first * 1e3,
                peak_rss_mb=_peak_rss_mb(),
            )
        )
    return points


def _timed(call: Callable[[], object], seconds: float) -> np.ndarray:
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(samples) < MIN_CALLS or time.perf_counter() < deadline:
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return np.array(samples)


def _peak_rss_mb() -> float:
    """The process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def benchmark(folder: Path, *, max_batch: int, seconds: float = 0.2) -> list[Point]:
    """Measure ``folder/model.onnx``; write benchmark.csv and benchmark.png beside it."""
    sizes = batch_ladder(max_batch)
    points = [p for n in thread_counts() for p in measure(folder / "model.onnx", n, sizes, seconds)]
    write_atomic(folder / CSV_NAME, to_csv(points).encode())
    write_atomic(folder / PLOT_NAME, plot(points))
    return points


def to_csv(points: list[Point]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, [f.name for f in fields(Point)])
    writer.writeheader()
    for point in points:
        writer.writerow(
            {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in asdict(point).items()}
        )
    return buffer.getvalue()


def plot(points: list[Point]) -> bytes:
    """PNG: rows/s and p50/p99 latency against batch size, one line per thread count."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise BatchmlError(
            "the benchmark plot needs matplotlib", hint="pip install 'batchml[torch]'"
        ) from exc
    figure, (rate, latency) = plt.subplots(1, 2, figsize=(10, 4))
    for threads in sorted({p.intra_op_threads for p in points}):
        mine = [p for p in points if p.intra_op_threads == threads]
        batches = [p.batch for p in mine]
        rate.plot(batches, [p.rows_per_s for p in mine], marker="o", label=f"{threads} thread(s)")
        latency.plot(batches, [p.p50_ms for p in mine], marker="o", label=f"p50, {threads} thr.")
        latency.plot(batches, [p.p99_ms for p in mine], ls="--", label=f"p99, {threads} thr.")
    for axis, label in ((rate, "rows/s"), (latency, "latency of one call [ms]")):
        axis.set(xscale="log", yscale="log", xlabel="batch size", ylabel=label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
