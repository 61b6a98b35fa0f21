"""batchml._compat.onnxruntime: the compiled session beneath ``InferenceSession.run``.

Checked on this environment's onnxruntime and on 1.16.3 (CMSSW's, the tests'
old runtime, where deployed packages also run BatchedSession).
"""

from __future__ import annotations

import subprocess
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from batchml._compat.onnxruntime import CHECKED_ON, PRIVATE_NAME, binding, fast_run
from tests.unit.package_fixtures import Runtime

FEEDS = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones((2, 3), np.float32)}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("Mul", ["a", "b"], ["prod"]),
        ],
        "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 3]) for n in "ab"],
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 3])
            for n in ("sum", "prod")
        ],
    )
    path = tmp_path_factory.mktemp("compat") / "model.onnx"
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    built.ir_version = 9
    onnx.save(built, path)
    return path


def _moved(installed: str) -> str:
    return (
        f"onnxruntime {installed}: {PRIVATE_NAME} is not where batchml._compat.onnxruntime "
        f"reaches for it (checked on {', '.join(CHECKED_ON)}); find where the binding's run "
        "went, or let BatchedSession use InferenceSession.run"
    )


def test_the_installed_onnxruntime_is_one_it_was_checked_on() -> None:
    installed = version("onnxruntime")
    assert installed in CHECKED_ON, (
        f"onnxruntime {installed} is not among the versions batchml._compat.onnxruntime was "
        f"checked on ({', '.join(CHECKED_ON)}): run this file, then add {installed} to CHECKED_ON"
    )


def test_the_binding_is_there_and_answers_as_run_does(model: Path) -> None:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    assert binding(session) is not None, _moved(version("onnxruntime"))
    names = ["prod", "sum"]
    got = fast_run(session, names)(FEEDS)
    for mine, public in zip(got, session.run(names, FEEDS), strict=True):
        np.testing.assert_array_equal(mine, public)


def test_a_call_the_binding_refuses_gets_the_public_runs_message(model: Path) -> None:
    """The binding says 'Invalid input name'; the wrapper names what is missing."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    with pytest.raises(ValueError, match=r"Required inputs \(\['b'\]\) are missing"):
        fast_run(session, ["sum"])({"a": FEEDS["a"], "c": FEEDS["b"]})


OLD_RUNTIME = """
import sys
sys.path[:0] = sys.argv[1:3]  # the runtime's site-packages, this checkout
import numpy as np, onnxruntime as ort
from batchml._compat.onnxruntime import binding, fast_run
session = ort.InferenceSession(sys.argv[3], providers=["CPUExecutionProvider"])
assert binding(session) is not None, "no binding"
feeds = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones((2, 3), np.float32)}
got, public = fast_run(session, ["sum"])(feeds), session.run(["sum"], feeds)
assert np.array_equal(got[0], public[0]), (got, public)
print(ort.__version__)
"""


def test_the_binding_is_there_in_cmssws_onnxruntime(model: Path, old_onnxruntime: Runtime) -> None:
    run = subprocess.run(
        [old_onnxruntime.python, "-I", "-S", "-c", OLD_RUNTIME, old_onnxruntime.site,
         str(Path(__file__).parents[2]), str(model)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, f"{_moved(old_onnxruntime.onnxruntime)}\n{run.stderr}"
    assert run.stdout.strip() == old_onnxruntime.onnxruntime
    assert old_onnxruntime.onnxruntime in CHECKED_ON
