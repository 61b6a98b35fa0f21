"""``BatchedSession``: each caller gets its own row, bad events fail alone, batching happens.

The model is a linear layer written with onnx.helper (no torch, no export), so
expected outputs are one matrix product of the normalised inputs.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from batchml.inference import BatchedSession, InputError, _Chooser, _LoopQueue

WEIGHTS = np.arange(6, dtype=np.float32).reshape(3, 2) / 10
MEDIAN = np.array([50.0, 0.0, 0.0])
FACTOR = np.array([0.05, 1.0, 0.5])


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


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("linear")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["output"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(WEIGHTS, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, out / "model.onnx")
    spec = {
        "input_names": ["x"],
        "output_names": ["output"],
        "x": {"var_names": ["pt", "eta", "phi"], "var_infos": _infos()},
    }
    (out / "preprocess.json").write_text(json.dumps(spec))
    return out


def expected(raw: np.ndarray) -> np.ndarray:
    return ((raw - MEDIAN) * FACTOR).astype(np.float32) @ WEIGHTS


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


def _all_rows_right_from_coroutines(session: BatchedSession, raw: np.ndarray) -> None:
    async def main() -> list[np.ndarray]:
        return await asyncio.gather(*(session.apredict(row) for row in raw))

    got = asyncio.run(main())
    session.close()
    np.testing.assert_allclose(np.stack(got), expected(raw), rtol=1e-5)


def test_coroutines_are_gathered_into_batches(folder: Path) -> None:
    session = BatchedSession(folder, max_batch=64, max_delay_ms=5, batching=True)
    sizes: list[int] = []
    compute = session._compute
    session._compute = lambda feeds: sizes.append(len(feeds["x"])) or compute(feeds)  # type: ignore[method-assign]
    raw = events(200)

    _all_rows_right_from_coroutines(session, raw)
    assert sum(sizes) == 200 and max(sizes) <= 64  # never above max_batch
    assert len(sizes) <= 200 // 32 + 1  # sent by halves of max_batch at least, not 200 calls


def test_two_coroutine_batches_are_in_flight_so_the_helper_never_waits(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = BatchedSession(folder, max_batch=64, batching=True)
    seen: list[int] = []
    dispatch = _LoopQueue.dispatch

    def counting(queue: _LoopQueue) -> None:
        dispatch(queue)
        seen.append(queue.in_flight)

    monkeypatch.setattr(_LoopQueue, "dispatch", counting)
    compute = session._compute

    def heavier(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        time.sleep(0.005)  # a heavier model: no batch is quick enough to run on the loop,
        return compute(feeds)  # and the next half gathers while one runs, however busy

    monkeypatch.setattr(session, "_compute", heavier)
    raw = events(256)

    _all_rows_right_from_coroutines(session, raw)
    assert max(seen) == 2  # one running, one queued behind it


def test_the_onnx_runtime_wrapper_serves_when_its_binding_fails(folder: Path) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("binding unavailable")

    session = BatchedSession(folder, batching=False)
    session._binding_run = broken
    raw = events(5)
    np.testing.assert_allclose(session.predict(raw[0]), expected(raw[:1])[0], rtol=1e-5)
    np.testing.assert_allclose(session.predict_many(raw), expected(raw), rtol=1e-5)


def _serve(mode: _Chooser, now: float, rate: dict[bool, float]) -> float:
    """Let callers complete ``rate[way]`` calls/s until the open window ends; return its end."""
    end = mode.window_end
    mode.calls = int(rate[mode.batched] * (end - mode.window_start))
    mode.tick(end)
    return end


def test_thread_callers_get_the_way_that_served_more_calls() -> None:
    mode = _Chooser(None)
    assert not mode.batched and mode.window_end == 0.0  # the first look opens a trial
    mode.tick(100.0)
    now = _serve(mode, 100.0, {False: 50_000, True: 120_000})  # direct trial
    assert mode.phase == "batched" and mode.batched
    now = _serve(mode, now, {False: 50_000, True: 120_000})
    assert mode.phase == "hold" and mode.batched and mode.window_end == now + mode.FIRST_HOLD_S
    # after the hold both ways are tried again; batching wins by too little this time
    now = _serve(mode, now, {False: 50_000, True: 120_000})
    assert mode.phase == "direct" and not mode.batched
    now = _serve(mode, now, {False: 50_000, True: 52_000})  # within the margin: not worth it
    now = _serve(mode, now, {False: 50_000, True: 52_000})
    assert mode.phase == "hold" and not mode.batched
    assert mode.window_end == now + mode.FIRST_HOLD_S  # a changed choice is checked again soon


def test_a_choice_that_keeps_winning_is_held_longer_up_to_the_cap() -> None:
    mode = _Chooser(None)
    mode.tick(0.0)
    now, holds = 0.0, []
    for _ in range(4):
        now = _serve(mode, now, {False: 50_000, True: 120_000})  # direct trial
        now = _serve(mode, now, {False: 50_000, True: 120_000})  # batched trial, kept
        assert mode.phase == "hold" and mode.batched
        holds.append(round(mode.window_end - now, 6))
        now = _serve(mode, now, {False: 50_000, True: 120_000})  # the hold ends
    assert holds == [0.5, 1.0, 2.0, 2.0]


def test_a_lone_caller_is_not_batched_and_a_pinned_way_stays() -> None:
    mode = _Chooser(None)
    mode.tick(0.0)
    _serve(mode, 0.0, {False: 100, True: 1e6})  # 5 calls in a window: low load
    assert mode.phase == "hold" and not mode.batched
    pinned = _Chooser(True)
    assert pinned.batched and pinned.window_end == float("inf")


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


def test_importing_it_needs_neither_torch_nor_the_rest_of_batchml() -> None:
    code = (
        "import sys, batchml.inference; "
        "print(sorted(m for m in sys.modules if m.startswith(('batchml', 'torch'))))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "['batchml', 'batchml.inference']"


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
