"""``BatchedSession``: each caller gets its own row, bad events fail alone, batching happens.

The models are written with onnx.helper (no torch, no export), so expected
outputs are matrix products of the normalised inputs. One of them also
returns, for every row, the size of the batch it was computed in: that is how
these tests see batching from the outside.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from batchml.errors import BatchmlError
from batchml.inference import BatchedSession, InputError, UnsupportedModel
from batchml.inference.chooser import Chooser
from tests.unit.package_fixtures import Runtime

WEIGHTS = np.arange(6, dtype=np.float32).reshape(3, 2) / 10
MEDIAN = np.array([50.0, 0.0, 0.0])
FACTOR = np.array([0.05, 1.0, 0.5])
# A model heavy enough that no batch runs on the event loop instead of the helper thread
HEAVY = [
    np.random.default_rng(i).normal(scale=0.1, size=shape).astype(np.float32)
    for i, shape in enumerate([(3, 512), (512, 512), (512, 2)])
]
OPSET = [helper.make_opsetid("", 18)]


def _infos() -> dict[str, dict[str, float]]:
    return {
        name: {
            "median": float(m),
            "norm_factor": float(f),
            "replace_inf_value": 0.0,
            "lower_bound": -1e32,
            "upper_bound": 1e32,
            "pad": 0.0,
        }
        for name, m, f in zip(("pt", "eta", "phi"), MEDIAN, FACTOR, strict=True)
    }


def _save(folder: Path, graph: onnx.GraphProto, preprocess: bool = True) -> Path:
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 9
    onnx.save(model, folder / "model.onnx")
    if preprocess:
        spec = {
            "input_names": ["x"],
            "output_names": [o.name for o in graph.output],
            "x": {"var_names": ["pt", "eta", "phi"], "var_infos": _infos()},
        }
        (folder / "preprocess.json").write_text(json.dumps(spec))
    return folder


def _chain(weights: list[np.ndarray], batch_size: bool) -> onnx.GraphProto:
    """x @ w0 @ w1 ... as ``output``; with ``batch_size``, each row's batch size as ``batch``."""
    names = [f"w{i}" for i in range(len(weights))]
    flow = ["x", *[f"h{i}" for i in range(1, len(weights))], "output"]
    nodes = [
        helper.make_node("MatMul", [a, w], [b])
        for a, w, b in zip(flow[:-1], names, flow[1:], strict=True)
    ]
    initializers = [numpy_helper.from_array(w, n) for w, n in zip(weights, names, strict=True)]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 2])]
    if batch_size:  # zeros of shape (batch, 1) plus the batch axis's length
        nodes += [
            helper.make_node("Shape", ["x"], ["shape"], start=0, end=1),
            helper.make_node("Cast", ["shape"], ["length"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["x", "zero"], ["zeros"]),
            helper.make_node("ReduceSum", ["zeros", "last"], ["column"], keepdims=1),
            helper.make_node("Add", ["column", "length"], ["batch"]),
        ]
        initializers += [
            numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
            numpy_helper.from_array(np.array([1], np.int64), "last"),
        ]
        outputs.append(helper.make_tensor_value_info("batch", TensorProto.FLOAT, ["batch", 1]))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    return helper.make_graph(nodes, "chain", [x], outputs, initializers)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save(tmp_path_factory.mktemp("linear"), _chain([WEIGHTS], batch_size=False))


@pytest.fixture(scope="module")
def sizing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A heavier model that also says the size of the batch each row ran in."""
    return _save(tmp_path_factory.mktemp("sizing"), _chain(HEAVY, batch_size=True))


def normalised(raw: np.ndarray) -> np.ndarray:
    return ((raw - MEDIAN) * FACTOR).astype(np.float32)


def expected(raw: np.ndarray) -> np.ndarray:
    return normalised(raw) @ WEIGHTS


def events(n: int) -> np.ndarray:
    return np.random.default_rng(n).normal(size=(n, 3)).astype(np.float32) * 10 + 40


def test_one_event_is_normalised_then_run(folder: Path) -> None:
    with BatchedSession(folder) as session:
        raw = events(1)[0]
        np.testing.assert_allclose(session.predict(raw), expected(raw), rtol=1e-5)
        np.testing.assert_allclose(
            session.predict_many(events(300)), expected(events(300)), rtol=1e-5
        )


@pytest.mark.parametrize("batching", [True, False, None])
def test_many_threads_each_get_their_own_row(folder: Path, batching: bool | None) -> None:
    session = BatchedSession(folder, max_batch=16, batching=batching)
    raw = events(64)
    results: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        for _ in range(20):
            results[i] = session.predict(raw[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    got = np.stack([results[i] for i in range(64)])
    np.testing.assert_allclose(got, expected(raw), rtol=1e-5)


def _batch_sizes_from_coroutines(session: BatchedSession, raw: np.ndarray) -> list[int]:
    """Every row's own output checked; the size of the batch each row ran in, in event order."""

    async def main() -> list[dict[str, np.ndarray]]:
        return await asyncio.gather(*(session.apredict(row) for row in raw))  # type: ignore[misc]

    got = asyncio.run(main())
    session.close()
    want = normalised(raw) @ HEAVY[0] @ HEAVY[1] @ HEAVY[2]
    np.testing.assert_allclose(np.stack([g["output"] for g in got]), want, rtol=1e-4, atol=1e-5)
    return [int(g["batch"][0]) for g in got]


def test_coroutines_are_gathered_into_batches(sizing: Path) -> None:
    session = BatchedSession(sizing, max_batch=64, max_delay_ms=5, batching=True)
    sizes = _batch_sizes_from_coroutines(session, events(200))
    assert max(sizes) <= 64  # never above max_batch
    batches = sum(1 / s for s in sizes)  # each batch of n rows counted n times
    assert round(batches) <= 200 // 32 + 1  # sent by halves of max_batch at least, not 200 calls


def test_while_one_coroutine_batch_runs_the_next_is_queued_behind_it(sizing: Path) -> None:
    """Two batches in flight: the helper thread goes from one call straight to the next.

    The first half of ``max_batch`` is sent, and the second half is sent while
    the first is still running; the rest gathers into full batches behind them.
    With one batch in flight the second would have waited, and grown to 64.
    """
    session = BatchedSession(sizing, max_batch=64, batching=True)
    sizes = _batch_sizes_from_coroutines(session, events(256))
    assert sizes == [32] * 64 + [64] * 192


@pytest.mark.parametrize("batching", [True, False])
def test_a_bad_event_fails_alone(folder: Path, batching: bool) -> None:
    session = BatchedSession(folder, batching=batching, on_nan="raise")
    good = events(3)
    bad = good[1].copy()
    bad[0] = np.nan

    async def main() -> list[object]:
        calls = [session.apredict(good[0]), session.apredict(bad), session.apredict(good[2])]
        return await asyncio.gather(*calls, return_exceptions=True)

    first, error, third = asyncio.run(main())
    session.close()
    assert isinstance(error, InputError) and "NaN" in str(error)
    np.testing.assert_allclose(np.stack([first, third]), expected(good[[0, 2]]), rtol=1e-5)
    with pytest.raises(InputError, match=r"shape \(4,\)"):
        session.predict(np.zeros(4))
    with pytest.raises(InputError, match=r"rows \[1\]"):
        session.predict_many(np.stack([good[0], bad]))


@pytest.mark.parametrize("batching", [True, False])
def test_infinities_nan_and_huge_values_are_replaced_before_normalising(
    folder: Path, batching: bool
) -> None:
    session = BatchedSession(folder, batching=batching)
    raw = events(4)
    raw[0, 2], raw[1, 0], raw[2, 1], raw[3, 0] = np.inf, np.nan, -np.inf, 2e32
    replaced = np.where(np.isfinite(raw) & (np.abs(raw) <= 1e32), raw, 0.0)  # replace_inf_value
    np.testing.assert_allclose(session.predict_many(raw), expected(replaced), rtol=1e-5)
    rows = np.stack([session.predict(row) for row in raw])
    np.testing.assert_allclose(rows, expected(replaced), rtol=1e-5)


# -- the choice between batching and direct calls, on a clock the test drives -------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _serve(
    chooser: Chooser, clock: Clock, rate: Callable[[bool], float], seconds: float
) -> list[tuple[float, bool]]:
    """Callers completing ``rate(way)`` calls/s the way the chooser sends them, for ``seconds``;
    each change of way, with its time."""
    changes: list[tuple[float, bool]] = []
    end = clock.now + seconds
    while clock.now < end:
        way = chooser.batching()
        if not changes or changes[-1][1] != way:
            changes.append((clock.now, way))
        clock.now += 1 / rate(way)
    return changes


def _share_batched(changes: list[tuple[float, bool]], end: float) -> float:
    spans = zip(changes, [*changes[1:], (end, False)], strict=True)
    return sum(b - a for (a, way), (b, _) in spans if way) / (end - changes[0][0])


def test_thread_callers_get_the_way_that_serves_more_calls() -> None:
    faster = {False: 5_000, True: 12_000}
    clock = Clock()
    assert _share_batched(_serve(Chooser(None, clock), clock, faster.get, 5.0), 5.0) > 0.9
    within_margin = {False: 5_000, True: 5_200}  # batching adds latency: not worth it
    clock = Clock()
    assert _share_batched(_serve(Chooser(None, clock), clock, within_margin.get, 5.0), 5.0) < 0.1


def test_a_choice_that_keeps_winning_is_held_longer_and_a_changed_one_checked_soon() -> None:
    clock = Clock()
    chooser = Chooser(None, clock)
    changes = _serve(chooser, clock, {False: 5_000, True: 12_000}.get, 6.5)
    trials = [t for (_, before), (t, way) in itertools.pairwise(changes) if before and not way]
    trials = [changes[1][0] - Chooser.WINDOW_S, *trials]  # the first direct trial opened at once
    # each cycle: a direct window, a batched window, then the hold
    holds = [round(b - a - 2 * Chooser.WINDOW_S, 1) for a, b in itertools.pairwise(trials)]
    assert holds == [0.5, 1.0, 2.0, 2.0]  # doubling up to HOLD_S
    # batching stops paying: direct calls win the next trial, and are held FIRST_HOLD_S only
    changes = _serve(chooser, clock, {False: 5_000, True: 5_000}.get, 3.0)
    # the hold ends: a direct trial, a batched trial, direct kept, then its next batched trial
    assert [way for _, way in changes[:5]] == [True, False, True, False, True]
    kept, retried = changes[3][0], changes[4][0]
    assert round(retried - kept - Chooser.WINDOW_S, 1) == Chooser.FIRST_HOLD_S


def test_a_lone_caller_is_not_batched_and_a_pinned_way_stays() -> None:
    clock = Clock()
    lone = {False: 100, True: 1e6}  # 5 calls in a window: low load, where batching cannot pay
    assert _serve(Chooser(None, clock), clock, lone.get, 3.0) == [(0.0, False)]
    clock = Clock()
    pinned = Chooser(True, clock)
    assert _serve(pinned, clock, {False: 1e6, True: 5_000}.get, 3.0) == [(0.0, True)]


# -- where it runs, and what it refuses ----------------------------------------------------------

STANDALONE = """
import asyncio, importlib.util, sys
sys.path[:0] = sys.argv[1:3]  # the runtime's site-packages, this checkout
for name in ("torch", "pydantic", "yaml"):
    assert importlib.util.find_spec(name) is None, f"{name} must not be importable here"
import numpy as np, onnxruntime
from batchml.inference import BatchedSession
folder, events, outputs = sys.argv[3:6]
raw = np.load(events)
with BatchedSession(folder, batching=True) as session:
    async def main():
        return await asyncio.gather(*(session.apredict(row) for row in raw))
    rows = [*session.predict_many(raw), *map(session.predict, raw), *asyncio.run(main())]
np.save(outputs, np.stack(rows))
print(onnxruntime.__version__)
"""


def test_a_python_with_only_numpy_and_onnxruntime_1_16_serves_a_package(
    folder: Path, old_onnxruntime: Runtime, tmp_path: Path
) -> None:
    """A deployed package needs only batchml.inference: no torch, none of batchml's other needs."""
    raw = events(40)
    np.save(tmp_path / "events.npy", raw)
    checkout = str(Path(__file__).parents[2])
    run = subprocess.run(
        [old_onnxruntime.python, "-I", "-S", "-c", STANDALONE, old_onnxruntime.site, checkout,
         str(folder), str(tmp_path / "events.npy"), str(tmp_path / "rows.npy")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == old_onnxruntime.onnxruntime
    np.testing.assert_allclose(np.load(tmp_path / "rows.npy"), np.tile(expected(raw), (3, 1)),
                               rtol=1e-5)  # fmt: skip


def test_the_event_loop_example_serves_each_client_its_own_rows(folder: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "inference" / "score_server.py"
    run = subprocess.run(
        [sys.executable, str(example), str(folder), "--check-clients", "24", "--events", "30"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["events"] == 24 * 30
    assert summary["max_abs_diff"] < 1e-5  # every client got its own events' rows, in order


def test_a_folder_without_a_model_is_named_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no model.onnx here; pass a folder written by"):
        BatchedSession(tmp_path)


def _identity(tmp_path: Path, element: int, shape: list[str | int]) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", element, shape)],
        [helper.make_tensor_value_info("y", element, shape)],
    )
    return _save(tmp_path, graph, preprocess=False)


def test_a_model_with_a_second_symbolic_axis_is_refused_naming_it(tmp_path: Path) -> None:
    folder = _identity(tmp_path, TensorProto.FLOAT, ["batch", "particles", 3])
    with pytest.raises(UnsupportedModel) as refused:
        BatchedSession(folder)
    error = refused.value
    assert isinstance(error, ValueError) and isinstance(error, BatchmlError)
    assert error.exit_code == 2
    assert error.message == (
        f"{folder / 'model.onnx'}: input 'x' has shape ['batch', 'particles', 3], whose axis 1 "
        "('particles') has no fixed size; a session batches events of one shape along axis 0 only"
    )
    assert (
        error.hint == "export the model with a fixed size for every axis but the first (the batch)"
    )


def test_a_model_taking_a_type_numpy_cannot_feed_is_refused_naming_it(tmp_path: Path) -> None:
    folder = _identity(tmp_path, TensorProto.STRING, ["batch", 3])
    with pytest.raises(UnsupportedModel) as refused:
        BatchedSession(folder)
    error = refused.value
    assert error.message == (
        f"{folder / 'model.onnx'}: input 'x' takes tensor(string), which a session does not feed"
    )
    assert error.hint is not None and "tensor(float), tensor(double)" in error.hint


def test_triton_session_is_still_importable_from_where_it_was() -> None:
    from batchml.inference import TritonSession
    from batchml.triton_session import TritonSession as before_the_package

    assert before_the_package is TritonSession
