"""The Triton configuration, parsed back with protobuf's text format.

No Triton proto package is installable here (tritonclient needs grpc), so the
test defines the subset of ``inference.ModelConfig`` that the packager writes,
with the field and enum names of Triton's model_config.proto, through
``descriptor_pb2``. Text format refuses unknown fields and enum values, so a
misspelt field or type fails the parse.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from batchml.package.triton import Tensor, write_repository

F = descriptor_pb2.FieldDescriptorProto


def _message(file: Any, name: str, fields: list[tuple[str, int, int, str | None]]) -> Any:
    message = file.message_type.add(name=name)
    for number, (field, kind, label, type_name) in enumerate(fields, start=1):
        entry = message.field.add(name=field, number=number, type=kind, label=label)
        if type_name:
            entry.type_name = type_name
    return message


def model_config_class() -> Any:
    file = descriptor_pb2.FileDescriptorProto(name="mini_model_config.proto", package="inference")
    data_type = file.enum_type.add(name="DataType")
    for number, name in enumerate(
        [
            "TYPE_INVALID",
            "TYPE_BOOL",
            "TYPE_UINT8",
            "TYPE_INT8",
            "TYPE_INT32",
            "TYPE_INT64",
            "TYPE_FP16",
            "TYPE_FP32",
            "TYPE_FP64",
        ]
    ):
        data_type.value.add(name=name, number=number)
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    tensor = [
        ("name", F.TYPE_STRING, opt, None),
        ("data_type", F.TYPE_ENUM, opt, ".inference.DataType"),
        ("dims", F.TYPE_INT64, rep, None),
    ]
    _message(file, "ModelInput", tensor)
    _message(file, "ModelOutput", tensor)
    _message(
        file, "ModelDynamicBatching", [("max_queue_delay_microseconds", F.TYPE_UINT64, opt, None)]
    )
    group = _message(
        file,
        "ModelInstanceGroup",
        [
            ("count", F.TYPE_INT32, opt, None),
            ("kind", F.TYPE_ENUM, opt, ".inference.ModelInstanceGroup.Kind"),
        ],
    )
    kind = group.enum_type.add(name="Kind")
    for number, name in enumerate(["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]):
        kind.value.add(name=name, number=number)
    agent = _message(
        file,
        "Agent",
        [
            ("name", F.TYPE_STRING, opt, None),
            ("parameters", F.TYPE_MESSAGE, rep, ".inference.Agent.ParametersEntry"),
        ],
    )
    entry = agent.nested_type.add(name="ParametersEntry")
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=opt)
    entry.field.add(name="value", number=2, type=F.TYPE_STRING, label=opt)
    entry.options.map_entry = True
    _message(file, "ModelRepositoryAgents", [("agents", F.TYPE_MESSAGE, rep, ".inference.Agent")])
    _message(
        file,
        "ModelConfig",
        [
            ("name", F.TYPE_STRING, opt, None),
            ("platform", F.TYPE_STRING, opt, None),
            ("max_batch_size", F.TYPE_INT32, opt, None),
            ("input", F.TYPE_MESSAGE, rep, ".inference.ModelInput"),
            ("output", F.TYPE_MESSAGE, rep, ".inference.ModelOutput"),
            ("dynamic_batching", F.TYPE_MESSAGE, opt, ".inference.ModelDynamicBatching"),
            ("instance_group", F.TYPE_MESSAGE, rep, ".inference.ModelInstanceGroup"),
            ("model_repository_agents", F.TYPE_MESSAGE, opt, ".inference.ModelRepositoryAgents"),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def test_config_parses_as_a_model_config(tmp_path: Path) -> None:
    model = b"not really onnx"
    written = write_repository(
        tmp_path,
        "jets",
        12,
        model,
        [Tensor("x", "float32", (3,)), Tensor("mask", "bool", (16,))],
        [Tensor("output", "float32", (2,))],
        max_batch=256,
    )
    assert written[0] == tmp_path / "jets" / "12" / "model.onnx"  # "12", never "0012"
    config = text_format.Parse(written[1].read_text(), model_config_class()())
    assert (config.name, config.platform, config.max_batch_size) == (
        "jets",
        "onnxruntime_onnx",
        256,
    )
    assert [(t.name, list(t.dims)) for t in config.input] == [("x", [3]), ("mask", [16])]
    assert config.input[1].data_type == 1  # TYPE_BOOL
    assert [list(t.dims) for t in config.output] == [[2]]  # no batch dimension
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert config.instance_group[0].count == 1
    (agent,) = config.model_repository_agents.agents
    assert agent.name == "checksum"
    assert dict(agent.parameters) == {"MD5:12/model.onnx": hashlib.md5(model).hexdigest()}


def test_the_built_package_config_parses(tmp_path: Path) -> None:
    from tests.unit.package_fixtures import package

    out = package(tmp_path / "registry", tmp_path / "out", bench_seconds=None)
    text = (out / "triton" / "jets" / "config.pbtxt").read_text()
    config = text_format.Parse(text, model_config_class()())
    assert [list(t.dims) for t in config.input] == [[3]] and config.max_batch_size == 32
