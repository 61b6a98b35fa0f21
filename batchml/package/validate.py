"""torch against ONNX Runtime, on the registry's input example and on random training-range inputs.

An export can be wrong without failing: an operator with another rounding, a
batch dimension specialised somewhere inside. So the packaged graph is run at
batch sizes 1, 2, 7, 64 and the maximum, on the stored input example (its rows
cycled to the batch size) and on random inputs drawn uniformly in the training
range (raw values from the normalisation statistics, normalised as in
training; the example's per-column range where there are none), and every
output is compared element by element with ``|onnx - torch| <= atol + rtol *
|torch|``. The report states the tolerances; the build fails beyond them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from batchml.errors import BatchmlError
from batchml.package.export import TorchModel
from batchml.package.metadata import normalise, training_range

BATCH_SIZES = (1, 2, 7, 64)
SOURCES = ("example", "random")


class ValidationFailed(BatchmlError):
    """ONNX Runtime's outputs differ from torch's beyond the stated tolerance."""


@dataclass(frozen=True)
class Tolerance:
    """Element-wise bound, numpy ``allclose`` style; float32 defaults allow operator reordering."""

    atol: float = 1e-5
    rtol: float = 1e-4

    def rule(self) -> str:
        return f"|onnx - torch| <= {self.atol:g} + {self.rtol:g} * |torch|, element by element"


def batch_sizes(max_batch: int) -> list[int]:
    return sorted({*BATCH_SIZES, max_batch})


def make_inputs(
    source: str,
    n: int,
    example: Mapping[str, np.ndarray],
    spec: Mapping[str, Any],
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Model inputs of batch ``n``: the example's rows cycled, or random in the training range."""
    if source == "example":
        return {k: np.take(v, np.arange(n) % len(v), axis=0) for k, v in example.items()}
    return {k: _random(k, v, n, spec, rng) for k, v in example.items()}


def _random(
    name: str, example: np.ndarray, n: int, spec: Mapping[str, Any], rng: np.random.Generator
) -> np.ndarray:
    if example.dtype.kind != "f":  # masks and indices: real rows, reshuffled
        return example[rng.integers(0, len(example), n)]
    shape = (n, *example.shape[1:])
    known = training_range(spec, name) if name in spec else None
    if known is None:  # no statistics: the example's own range, already normalised
        low, high = example.min(axis=0), example.max(axis=0)
        return rng.uniform(low, high, shape).astype(example.dtype)
    raw = rng.uniform(known[0], known[1], shape).astype(example.dtype)
    return normalise(spec, name, raw)


def compare(expected: np.ndarray, got: np.ndarray, tolerance: Tolerance) -> dict[str, Any]:
    """Largest absolute and relative difference of one output, and whether it is within bounds."""
    expected64, got64 = expected.astype(np.float64), got.astype(np.float64)
    diff = np.abs(got64 - expected64)
    relative = diff / np.maximum(np.abs(expected64), np.finfo(np.float64).tiny)
    ok = expected.shape == got.shape and bool(
        np.all(diff <= tolerance.atol + tolerance.rtol * np.abs(expected64))
    )
    return {
        "max_abs": float(diff.max(initial=0.0)),
        "max_rel": float(relative.max(initial=0.0)),
        "shape": list(got.shape),
        "ok": ok,
    }


def validate(
    model: TorchModel,
    onnx_bytes: bytes,
    example: Mapping[str, np.ndarray],
    spec: Mapping[str, Any],
    max_batch: int,
    tolerance: Tolerance,
    seed: int = 0,
    layout: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """The comparison report of one ONNX graph; ``passed`` is False when any output is off.

    ``layout`` turns torch's inputs into the graph's, where the two differ.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(seed)
    cases: list[dict[str, Any]] = []
    for source in SOURCES:
        for n in batch_sizes(max_batch):
            feeds = make_inputs(source, n, example, spec, rng)
            expected = model(feeds)
            got = session.run(None, feeds if layout is None else layout(feeds))
            outputs = {
                name: compare(e, g, tolerance)
                for name, e, g in zip(names, expected, got, strict=True)
            }
            passed = all(o["ok"] for o in outputs.values())
            cases.append({"input": source, "batch": n, "outputs": outputs, "ok": passed})
    return {
        "tolerance": {**asdict(tolerance), "rule": tolerance.rule()},
        "seed": seed,
        "passed": all(c["ok"] for c in cases),
        "max_abs": max(o["max_abs"] for c in cases for o in c["outputs"].values()),
        "cases": cases,
    }


def failures(report: Mapping[str, Any]) -> list[str]:
    """Readable lines for the cases that failed (for the error message)."""
    return [
        f"{c['input']} inputs, batch {c['batch']}, output {name}: max |diff| {o['max_abs']:.3g}"
        for c in report["cases"]
        for name, o in c["outputs"].items()
        if not o["ok"]
    ]
