"""A package served by a real Triton server (nvidia-pytriton's 2.51, python backend).

One server per module serves a package built with ``--triton-backend python``;
its outputs are compared with ONNX Runtime run directly on the same file
(raw model, no preprocessing) and, through TritonSession, with BatchedSession
(same preprocessing on the client side). Dynamic batching is read from the
server's own statistics. ``batchml package serve`` runs as a user runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException

from batchml.inference import BatchedSession, TritonSession, UnsupportedModel
from batchml.package.triton import Tensor, TritonOptions, write_repository
from batchml.package.triton.server import ServeOptions, TritonServer, serve
from tests.unit.package_fixtures import package

pytestmark = [pytest.mark.triton, pytest.mark.timeout(300)]
MAX_BATCH = 32  # package_fixtures builds with this
CALLERS = 64


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("triton")
    return package(
        root / "registry", root / "pkg", bench_seconds=None, triton=TritonOptions(backend="python")
    )


@pytest.fixture(scope="module")
def server(built: Path) -> Iterator[TritonServer]:
    with serve(built, ServeOptions(log=built.parent / "server.log")) as running:
        yield running


def _events(n: int, seed: int = 0) -> np.ndarray:
    """Raw detector-like values (pt around 50, angles around 0)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 3)) * [20.0, 1.5, 1.8] + [50.0, 0.0, 0.0]).astype(np.float32)


def _infer(client: grpcclient.InferenceServerClient, x: np.ndarray) -> np.ndarray:
    tensor = grpcclient.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return np.asarray(client.infer("jets", [tensor]).as_numpy("output"))


def _batch_counts(client: grpcclient.InferenceServerClient) -> dict[int, int]:
    stats = client.get_inference_statistics("jets", as_json=True)["model_stats"][0]
    return {
        int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])
    }


def test_the_repository_loads_as_built(server: TritonServer) -> None:
    client = grpcclient.InferenceServerClient(server.endpoints.grpc_url)
    assert client.is_server_ready() and client.is_model_ready("jets")
    config = client.get_model_config("jets", as_json=True)["config"]
    assert config["backend"] == "python" and config["max_batch_size"] == MAX_BATCH
    assert "dynamic_batching" in config
    assert [(t["name"], t["dims"]) for t in config["input"]] == [("x", ["3"])]
    assert server.endpoints.host == "127.0.0.1"
    client.close()


@pytest.mark.parametrize("rows", [1, 8, MAX_BATCH])
def test_outputs_equal_onnxruntime_run_directly(
    server: TritonServer, built: Path, rows: int
) -> None:
    x = _events(rows, seed=rows)
    direct = ort.InferenceSession(str(built / "model.onnx"), providers=["CPUExecutionProvider"])
    client = grpcclient.InferenceServerClient(server.endpoints.grpc_url)
    served = _infer(client, x)
    client.close()
    assert served.shape == (rows, 2)
    np.testing.assert_array_equal(served, direct.run(["output"], {"x": x})[0])


def test_a_batch_over_max_batch_is_refused_by_triton(server: TritonServer) -> None:
    client = grpcclient.InferenceServerClient(server.endpoints.grpc_url)
    with pytest.raises(InferenceServerException, match=f"batch-size must be <= {MAX_BATCH}"):
        _infer(client, _events(MAX_BATCH + 1))
    client.close()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_triton_session_answers_as_batched_session(
    server: TritonServer, built: Path, protocol: str
) -> None:
    url = server.endpoints.grpc_url if protocol == "grpc" else f"127.0.0.1:{server.endpoints.http}"
    x = _events(100, seed=3)
    with BatchedSession(built) as local, TritonSession(built, url, protocol) as remote:  # type: ignore[arg-type]
        assert remote.max_batch == MAX_BATCH and remote.output_names == local.output_names
        expected = local.predict_many(x)
        np.testing.assert_allclose(remote.predict_many(x), expected, rtol=1e-6)  # 4 slices
        np.testing.assert_allclose(remote.predict(x[5]), expected[5], rtol=1e-6)
        np.testing.assert_allclose(remote.predict(x[5].tolist()), expected[5], rtol=1e-6)
        np.testing.assert_allclose(remote.predict({"x": x[6]}), expected[6], rtol=1e-6)
        with pytest.raises(ValueError, match=r"has shape \(4,\); the model takes \(3,\)"):
            remote.predict(np.zeros(4, dtype=np.float32))

        async def many() -> list[Any]:
            return await asyncio.gather(*(remote.apredict(row) for row in x[:CALLERS]))

        np.testing.assert_allclose(np.stack(asyncio.run(many())), expected[:CALLERS], rtol=1e-6)


def test_concurrent_single_event_callers_are_batched_by_the_server(
    server: TritonServer, built: Path
) -> None:
    client = grpcclient.InferenceServerClient(server.endpoints.grpc_url)
    before = _batch_counts(client)
    x = _events(CALLERS * 4, seed=4)
    results: list[Any] = [None] * len(x)
    start = threading.Barrier(CALLERS)
    with TritonSession(built, server.endpoints.grpc_url) as remote:

        def caller(k: int) -> None:
            start.wait()
            for i in range(k, len(x), CALLERS):
                results[i] = remote.predict(x[i])

        threads = [threading.Thread(target=caller, args=(k,)) for k in range(CALLERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    after = _batch_counts(client)
    client.close()
    merged = {size: n - before.get(size, 0) for size, n in after.items() if size > 1}
    assert sum(merged.values()) > 0, f"no batch larger than 1 in {after}"
    served = sum(size * (n - before.get(size, 0)) for size, n in after.items())
    assert served == len(x)  # every event once, each in one batch
    with BatchedSession(built) as local:
        np.testing.assert_allclose(np.stack(results), local.predict_many(x), rtol=1e-6)


# -- batchml package serve, as a user runs it -------------------------------------------------


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "batchml.cli", "--no-color", "package", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_serve_prints_the_endpoints_and_stops_on_a_signal(
    built: Path, tmp_path: Path, signum: int, status: int
) -> None:
    own = shutil.copytree(built, tmp_path / "pkg")  # its processes are told apart by its path
    log = tmp_path / "server.log"
    run = _serve(str(own), "--log", str(log))
    assert run.stdout is not None
    lines = [run.stdout.readline() for _ in range(6)]
    text = "".join(lines)
    ports = {k: int(v) for k, v in re.findall(r"(HTTP|gRPC|metrics) +\S*?127\.0\.0\.1:(\d+)", text)}
    assert set(ports) == {"HTTP", "gRPC", "metrics"}, text
    with TritonSession(own, f"127.0.0.1:{ports['gRPC']}") as remote:
        assert remote.predict(_events(1)[0]).shape == (2,)
    server_pid = int(re.findall(r"(\d+)\]? model_lifecycle", log.read_text())[0])
    run.send_signal(signum)
    assert run.wait(60) == status, run.stderr.read() if run.stderr else ""
    assert _gone(server_pid), "tritonserver still running"
    stubs = subprocess.run(["pgrep", "-f", str(own / "triton")], capture_output=True, text=True)
    assert stubs.stdout == "", f"python backend stubs left: {stubs.stdout}"
    for port in ports.values():  # nobody listens there any more (TIME_WAIT aside)
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))


def _cli_error(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    run = _serve(*args, env=env)
    _, err = run.communicate(timeout=120)
    return run.returncode, err


def test_serve_refuses_a_package_for_the_onnxruntime_backend(tmp_path: Path) -> None:
    built = package(tmp_path / "registry", tmp_path / "pkg", bench_seconds=None)
    status, err = _cli_error(str(built))
    assert status == 2
    assert "needs Triton's onnxruntime backend" in err and "has only python" in err
    assert "--triton-backend python" in err and "Traceback" not in err


def test_serve_says_which_port_is_taken(built: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, err = _cli_error(str(built), "--grpc-port", str(port))
    assert status == 2 and f"port {port} on 127.0.0.1 is in use" in err, err


def test_serve_explains_a_missing_checksum_agent(tmp_path: Path) -> None:
    options = TritonOptions(backend="python", checksum=True)
    built = package(tmp_path / "registry", tmp_path / "pkg", bench_seconds=None, triton=options)
    status, err = _cli_error(str(built), "--log", str(tmp_path / "server.log"))
    assert status == 1, err
    assert "no 'checksum' repository agent" in err and "without --triton-checksum" in err


def test_serve_names_the_install_command_when_no_server_is_found(
    built: Path, tmp_path: Path
) -> None:
    """A Python that sees batchml and its dependencies but not nvidia-pytriton, and a bare PATH."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    hidden = tmp_path / "site"
    hidden.mkdir()
    for entry in site.iterdir():
        if not entry.name.startswith(("pytriton", "nvidia_pytriton")):
            (hidden / entry.name).symlink_to(entry)
    repo = Path(__file__).resolve().parents[2]
    code = (
        f"import sys; sys.path[:0] = [{str(repo)!r}, {str(hidden)!r}]; "
        "from batchml.cli import main; "
        f"sys.exit(main(['package', 'serve', {str(built)!r}]))"
    )
    run = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=120,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert "no tritonserver found" in run.stderr
    assert "pip install --no-deps 'nvidia-pytriton>=0.7,<0.8'" in run.stderr


def _package_of(folder: Path, graph: Any, inputs: list[Tensor], outputs: list[Tensor]) -> None:
    """A package folder as TritonSession and BatchedSession read it, around ``graph``."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, folder / "model.onnx")
    (folder / "metadata.json").write_text(json.dumps({"name": graph.name}))
    write_repository(
        folder / "triton",
        graph.name,
        1,
        (folder / "model.onnx").read_bytes(),
        inputs,
        outputs,
        max_batch=8,
        options=TritonOptions(backend="python"),
    )


def test_two_inputs_and_two_outputs_come_back_as_in_process(tmp_path: Path) -> None:
    """model.py concatenates every input of a dynamic batch and splits every output back."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("Mul", ["a", "b"], ["prod"]),
        ],
        "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 4]) for n in "ab"],
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 4])
            for n in ("sum", "prod")
        ],
    )
    _package_of(
        tmp_path,
        graph,
        [Tensor("a", "float32", (4,)), Tensor("b", "float32", (4,))],
        [Tensor("sum", "float32", (4,)), Tensor("prod", "float32", (4,))],
    )
    rng = np.random.default_rng(7)
    chunk = {n: rng.normal(size=(20, 4)).astype(np.float32) for n in "ab"}
    options = ServeOptions(log=tmp_path / "server.log")
    with serve(tmp_path, options) as running, BatchedSession(tmp_path) as local:
        with TritonSession(tmp_path, running.endpoints.grpc_url) as remote:
            assert remote.output_names == local.output_names == ["sum", "prod"]
            one = remote.predict({"a": chunk["a"][0], "b": chunk["b"][0]})
            many = remote.predict_many(chunk)  # 3 requests of at most 8 rows
            start = threading.Barrier(len(chunk["a"]))
            rows: list[Any] = [None] * len(chunk["a"])

            def caller(i: int) -> None:
                start.wait()
                rows[i] = remote.predict({n: chunk[n][i] for n in "ab"})

            threads = [threading.Thread(target=caller, args=(i,)) for i in range(len(rows))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        expected = local.predict_many(chunk)
    assert isinstance(one, dict) and set(one) == {"sum", "prod"}
    for name in ("sum", "prod"):
        np.testing.assert_array_equal(one[name], expected[name][0])
        np.testing.assert_array_equal(many[name], expected[name])
        np.testing.assert_array_equal(np.stack([r[name] for r in rows]), expected[name])


def test_a_served_model_with_a_variable_axis_is_refused_by_name(tmp_path: Path) -> None:
    """Triton gives a variable size as -1: TritonSession refuses it as BatchedSession does."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "ragged",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "particles", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "particles", 4])],
    )
    _package_of(
        tmp_path, graph, [Tensor("x", "float32", (-1, 4))], [Tensor("y", "float32", (-1, 4))]
    )
    with serve(tmp_path, ServeOptions(log=tmp_path / "server.log")) as running:
        url = running.endpoints.grpc_url
        with pytest.raises(UnsupportedModel) as refused:
            TritonSession(tmp_path, url)
    assert refused.value.message == (
        f"model 'ragged' on the Triton server at {url}: input 'x' has shape [-1, -1, 4], whose "
        "axis 1 (-1) has no fixed size; a session batches events of one shape along axis 0 only"
    )
    with pytest.raises(UnsupportedModel, match="axis 1 \\('particles'\\) has no fixed size"):
        BatchedSession(tmp_path)
