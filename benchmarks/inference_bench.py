"""Batched inference against per-call ONNX Runtime, the batch limit, and torch eager.

Three MLPs: the issue's small (20-64-64-1) and larger (20-512-512-512-1) ones,
and the demo's (one input per flat feature, 128-128-1). For each: 64 threads
and 256 asyncio callers submitting single events, either straight to ONNX
Runtime at batch 1 ("per call") or through BatchedSession, then one thread and
one coroutine alone (low load, where batching must not cost); and the limit, one
thread running batches of ``max_batch``. Then ORT against torch eager at batch
1 and 256, and the packager's latency table for the demo model. All numbers
come from one run on one machine, intra-op threads 1. Prints Markdown.

    .venv/bin/python benchmarks/inference_bench.py [--seconds 1.5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from batchml.demo.sample import FLAT_FEATURES
from batchml.inference import BatchedSession
from batchml.package.bench import measure

MAX_BATCH = 256
THREADS = 64
COROUTINES = 256


def mlp(widths: list[int]) -> torch.nn.Module:
    layers: list[torch.nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1]).eval()


def export(model: torch.nn.Module, width: int, folder: Path) -> None:
    folder.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (torch.randn(4, width),),
            dynamo=True,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            input_names=["x"],
            output_names=["output"],
            verbose=False,
        )
    assert program is not None
    program.save(str(folder / "model.onnx"))


def in_threads(
    call: Callable[[np.ndarray], object], events: Sequence[np.ndarray], seconds: float
) -> tuple[float, list[float]]:
    """(calls/s, per-call latencies) of one thread per event, each calling with it in a loop."""
    stop = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in events]

    def work(mine: list[float], event: np.ndarray) -> None:
        while (start := time.perf_counter()) < stop:
            call(event)
            mine.append(time.perf_counter() - start)

    threads = [
        threading.Thread(target=work, args=pair) for pair in zip(latencies, events, strict=True)
    ]
    begin = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [x for m in latencies for x in m]
    return len(flat) / (time.perf_counter() - begin), flat


def in_coroutines(
    call: Callable[[np.ndarray], object], events: Sequence[np.ndarray], seconds: float
) -> tuple[float, list[float]]:
    """(calls/s, per-call latencies) of one coroutine per event, awaiting ``call`` in a loop."""
    latencies: list[float] = []

    async def main() -> float:
        stop = time.perf_counter() + seconds

        async def work(event: np.ndarray) -> None:
            while (start := time.perf_counter()) < stop:
                await call(event)  # type: ignore[misc]
                latencies.append(time.perf_counter() - start)

        begin = time.perf_counter()
        await asyncio.gather(*(work(event) for event in events))
        return len(latencies) / (time.perf_counter() - begin)

    return asyncio.run(main()), latencies


def limit(session: ort.InferenceSession, width: int, seconds: float) -> float:
    batch = np.random.rand(MAX_BATCH, width).astype(np.float32)
    rows, stop = 0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        session.run(None, {"x": batch})
        rows += MAX_BATCH
    return rows / seconds


def rate(call: Callable[[], object], rows: int, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        count += 1
    return count * rows / (time.perf_counter() - start)


def ms(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q) * 1e3:.2f}"


def one_model(
    name: str, widths: list[int], root: Path, seconds: float
) -> tuple[list[str], list[str]]:
    model, width = mlp(widths), widths[0]
    folder = root / name
    export(model, width, folder)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(folder / "model.onnx"), options)
    event = np.random.rand(width).astype(np.float32)

    def direct(e: np.ndarray) -> object:
        return session.run(None, {"x": e[None]})[0][0]

    async def adirect(e: np.ndarray) -> object:
        return direct(e)

    batched = BatchedSession(folder, max_batch=MAX_BATCH, intra_op_threads=1)
    top = limit(session, width, seconds)
    rows = []
    for count, kind, runner, per_call, through in (
        (THREADS, "threads", in_threads, direct, batched.predict),
        (COROUTINES, "coroutines", in_coroutines, adirect, batched.apredict),
        (1, "thread", in_threads, direct, batched.predict),
        (1, "coroutine", in_coroutines, adirect, batched.apredict),
    ):
        callers = f"{count} {kind}"
        base, base_lat = runner(per_call, [event] * count, seconds)
        got, lat = runner(through, [event] * count, seconds)
        rows.append(
            f"| {name} | {callers} | {base:,.0f} | {got:,.0f} | **{got / base:.2f}x** "
            f"| {top:,.0f} | **{got / top:.2f}** | {ms(base_lat, 50)} / {ms(base_lat, 99)} "
            f"| {ms(lat, 50)} / {ms(lat, 99)} |"
        )
    batched.close()
    eager = []
    for n in (1, MAX_BATCH):
        x = np.random.rand(n, width).astype(np.float32)
        with torch.no_grad():
            t = rate(lambda x=x: model(torch.from_numpy(x)), n, seconds / 2)
        o = rate(lambda x=x: session.run(None, {"x": x}), n, seconds / 2)
        eager.append(f"| {name} | {n} | {t:,.0f} | {o:,.0f} | **{o / t:.2f}x** |")
    return rows, eager


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = {
        "small 20-64-64-1": [20, 64, 64, 1],
        "larger 20-512x3-1": [20, 512, 512, 512, 1],
        f"demo {len(FLAT_FEATURES)}-128-128-1": [len(FLAT_FEATURES), 128, 128, 1],
    }
    batching, eager = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, widths) in enumerate(models.items()):
            rows, ratios = one_model(f"m{i}", widths, Path(tmp), args.seconds)
            batching += [r.replace(f"| m{i} |", f"| {name} |", 1) for r in rows]
            eager += [r.replace(f"| m{i} |", f"| {name} |", 1) for r in ratios]
        table = measure(Path(tmp) / "m2" / "model.onnx", 1, [1, 8, 64, 256], args.seconds / 3)
        table += measure(Path(tmp) / "m2" / "model.onnx", 2, [1, 8, 64, 256], args.seconds / 3)
    print(
        "| model | callers | per call, calls/s | BatchedSession, calls/s | vs per call "
        "| limit, rows/s | vs limit | p50/p99 ms per call | p50/p99 ms batched |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(batching))
    print("\n| model | batch | torch eager, rows/s | ONNX Runtime, rows/s | ratio |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(eager))
    print(
        "\n| threads | batch | p50 ms | p90 ms | p99 ms | rows/s | session ms | first ms "
        "| peak MB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for p in table:
        print(
            f"| {p.intra_op_threads} | {p.batch} | {p.p50_ms:.3f} | {p.p90_ms:.3f} "
            f"| {p.p99_ms:.3f} "
            f"| {p.rows_per_s:,.0f} | {p.session_create_ms:.1f} | {p.first_inference_ms:.2f} "
            f"| {p.peak_rss_mb:.0f} |"
        )


if __name__ == "__main__":
    main()
