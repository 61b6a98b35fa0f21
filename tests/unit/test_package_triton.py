"""The Triton configuration, parsed back as Triton's own ``inference.ModelConfig``.

tritonclient ships the generated module of Triton's model_config.proto; text
format refuses unknown fields and enum values, so a misspelt field or type
fails the parse. Loading by a real server is tests/integration/test_triton_server.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from batchml.errors import InvalidValue
from batchml.package.triton import Tensor, TritonOptions, python_model, write_repository

MODEL = b"not really onnx"


def _write(folder: Path, **options: Any) -> tuple[list[Path], Any]:
    written = write_repository(
        folder,
        "jets",
        12,
        MODEL,
        [Tensor("x", "float32", (3,)), Tensor("mask", "bool", (16,))],
        [Tensor("output", "float32", (2,))],
        max_batch=256,
        options=TritonOptions(**options),
    )
    return written, text_format.Parse(written[-1].read_text(), model_config_pb2.ModelConfig())


def test_config_parses_as_a_model_config(tmp_path: Path) -> None:
    written, config = _write(tmp_path)
    assert written == [tmp_path / "jets" / "12" / "model.onnx", tmp_path / "jets" / "config.pbtxt"]
    assert (config.name, config.platform, config.backend, config.max_batch_size) == (
        "jets",
        "onnxruntime_onnx",
        "",
        256,
    )
    assert [(t.name, list(t.dims)) for t in config.input] == [("x", [3]), ("mask", [16])]
    assert config.input[1].data_type == model_config_pb2.TYPE_BOOL
    assert [list(t.dims) for t in config.output] == [[2]]  # no batch dimension
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert config.instance_group[0].count == 1
    # no repository agent unless asked: a server built without one refuses the model
    assert not config.HasField("model_repository_agents")


def test_the_checksum_agent_is_opt_in_and_covers_every_model_file(tmp_path: Path) -> None:
    written, config = _write(tmp_path, backend="python", checksum=True)
    (agent,) = config.model_repository_agents.agents
    assert agent.name == "checksum"
    assert dict(agent.parameters) == {
        f"MD5:12/{path.name}": hashlib.md5(path.read_bytes()).hexdigest() for path in written[:-1]
    }


def test_the_python_backend_variant_serves_the_same_model(tmp_path: Path) -> None:
    (onnx_path, model_py, _), config = _write(tmp_path / "python", backend="python")
    _, stock = _write(tmp_path / "onnxruntime")
    assert (config.backend, config.platform) == ("python", "")
    assert onnx_path.read_bytes() == MODEL and model_py.read_bytes() == python_model()
    assert b"class TritonPythonModel" in model_py.read_bytes()
    # the same tensors, batching and instances as the onnxruntime variant
    config.backend, stock.platform = "", ""
    assert config == stock


def test_the_built_package_config_parses(tmp_path: Path) -> None:
    from batchml.package import BuildOptions
    from tests.unit.package_fixtures import package

    assert BuildOptions().triton == TritonOptions("onnxruntime", checksum=False)
    out = package(tmp_path / "registry", tmp_path / "out", bench_seconds=None)
    text = (out / "triton" / "jets" / "config.pbtxt").read_text()
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert [list(t.dims) for t in config.input] == [[3]] and config.max_batch_size == 32
    assert not config.HasField("model_repository_agents")


def test_a_tensor_type_without_a_triton_name_is_refused_naming_it() -> None:
    with pytest.raises(InvalidValue) as refused:
        Tensor("weights", "complex64", (3,))
    assert refused.value.message == (
        "the model's tensor 'weights' is complex64, which batchml does not declare in a Triton "
        "configuration"
    )
    assert refused.value.hint is not None and "float32, float64, float16" in refused.value.hint
