"""64 single-event callers: through a Triton server, through BatchedSession, or ONNX Runtime each.

Two MLPs (the inference benchmark's small 20-64-64-1 and larger 20-512x3-1)
are published to a scratch registry and packaged with ``--triton-backend
python``, then served by the real tritonserver that ``batchml package serve``
finds (nvidia-pytriton's 2.51 here). For each model, 64 threads submit single
events for ``--seconds``, three ways in one run:

- per call: each thread calls one shared ``InferenceSession.run`` at batch 1
  (the raw model, as a user calling ONNX Runtime himself);
- BatchedSession: ``predict`` in process (it checks and normalises each event
  with preprocess.json, then batches or calls directly, whichever measures faster);
- Triton: ``TritonSession.predict`` over gRPC (the same checks and normalisation
  on the client side; the server's dynamic batcher merges the requests, and
  model.py runs one ONNX Runtime call per merged batch).

Every session uses ONNX Runtime's default intra-op threads. The server's mean
batch, and the time a request spends queued and computed (the batch's time,
shared by its requests), come from its statistics endpoint. Prints Markdown.

    .venv/bin/python benchmarks/triton_bench.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tritonclient.grpc as grpcclient
from inference_bench import in_threads, mlp, ms  # this folder: run as a script

from batchml.inference import BatchedSession, TritonSession
from batchml.package import BuildOptions, build
from batchml.package.triton import TritonOptions
from batchml.package.triton.server import ServeOptions, serve
from batchml.registry import Registry

CALLERS = 64
MAX_BATCH = 256
COMPUTE = ("compute_input", "compute_infer", "compute_output")
MODELS = {"small 20-64-64-1": [20, 64, 64, 1], "larger 20-512x3-1": [20, 512, 512, 512, 1]}


def package(name: str, widths: list[int], root: Path) -> Path:
    names = [f"f{i}" for i in range(widths[0])]
    stats = {
        "format_version": 1,
        "count": 1000,
        "features": {n: {"mean": 1.0, "std": 2.0, "min": -10.0, "max": 10.0} for n in names},
    }
    example = np.random.default_rng(0).normal(size=(8, widths[0])).astype(np.float32)
    version = Registry(root / "registry").publish(
        name,
        mlp(widths),
        input_example=example,
        input_names=["x"],
        variables={"x": names},
        preprocessing=stats,
    )
    options = BuildOptions(
        max_batch=MAX_BATCH, bench_seconds=None, triton=TritonOptions(backend="python")
    )
    return build(version, root / name, options)


def served(client: grpcclient.InferenceServerClient, name: str) -> dict[str, int]:
    """The server's cumulative counts: requests, executions (batches), queue and compute ns."""
    stats = client.get_inference_statistics(name, as_json=True)["model_stats"][0]
    times = stats["inference_stats"]
    return {
        "requests": int(stats.get("inference_count", 0)),
        "batches": int(stats.get("execution_count", 0)),
        "queue_ns": int(times["queue"].get("ns", 0)),
        "compute_ns": sum(int(times[k].get("ns", 0)) for k in COMPUTE),
    }


def one_model(label: str, folder: Path, seconds: float) -> str:
    name = folder.name
    events = np.random.default_rng(1).normal(size=(CALLERS, MODELS[label][0])).astype(np.float32)
    direct = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    with (
        serve(folder, ServeOptions(log=folder.parent / f"{name}.log")) as server,
        BatchedSession(folder, max_batch=MAX_BATCH) as batched,
    ):
        remote = TritonSession(folder, server.endpoints.grpc_url)
        client = grpcclient.InferenceServerClient(server.endpoints.grpc_url)
        per_call, per_call_lat = in_threads(
            lambda e: direct.run(None, {"x": e[None]})[0][0], events, seconds
        )
        local, local_lat = in_threads(batched.predict, events, seconds)
        before = served(client, name)
        triton, triton_lat = in_threads(remote.predict, events, seconds)
        after = served(client, name)
        remote.close()
        client.close()
    delta = {k: after[k] - before[k] for k in after}
    requests = max(1, delta["requests"])
    mean_batch = delta["requests"] / max(1, delta["batches"])
    queue_ms, compute_ms = (delta[k] / requests / 1e6 for k in ("queue_ns", "compute_ns"))
    return (
        f"| {label} | {per_call:,.0f} | {local:,.0f} | {triton:,.0f} | {mean_batch:.1f} "
        f"| {queue_ms:.2f} / {compute_ms:.2f} "
        f"| **{triton / per_call:.2f}x** | **{triton / local:.2f}x** | **{local / per_call:.2f}x** "
        f"| {ms(per_call_lat, 50)} / {ms(per_call_lat, 99)} "
        f"| {ms(local_lat, 50)} / {ms(local_lat, 99)} "
        f"| {ms(triton_lat, 50)} / {ms(triton_lat, 99)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, widths) in enumerate(MODELS.items()):
            folder = package(f"mlp{i}", widths, Path(tmp))
            rows.append(one_model(label, folder, args.seconds))
    print(
        f"| model ({CALLERS} threads) | per call, calls/s | BatchedSession, calls/s "
        "| Triton, calls/s | Triton mean batch | server ms per request: queue / compute "
        "| Triton vs per call | Triton vs BatchedSession "
        "| BatchedSession vs per call | p50/p99 ms per call | p50/p99 ms BatchedSession "
        "| p50/p99 ms Triton |"
    )
    print("|" + " --- |" * 12)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
