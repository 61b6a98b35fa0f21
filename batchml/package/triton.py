"""A Triton model repository for the package: ``triton/<name>/config.pbtxt`` and ``<N>/model.onnx``.

Triton reads only version folders named by plain integers (``1``, not
``0001``), so the folder is the registry version number. The configuration
is protobuf text format of Triton's ``ModelConfig``: inputs and outputs without
the batch dimension (``max_batch_size`` stands for it), server-side dynamic
batching, one CPU instance (edit ``instance_group`` for GPUs), and the
``checksum`` repository agent with the model's MD5, so a copy corrupted on its
way to the server is refused at load time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from batchml.atomic import write_atomic

PLATFORM = "onnxruntime_onnx"
MODEL_FILE = "model.onnx"
# numpy dtype name -> Triton DataType (model_config.proto)
TRITON_TYPES = {
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "float16": "TYPE_FP16",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "bool": "TYPE_BOOL",
}


@dataclass(frozen=True)
class Tensor:
    """One input or output: its name, numpy dtype name and shape without the batch axis."""

    name: str
    dtype: str
    dims: tuple[int, ...]  # -1 for a variable-size axis

    def render(self) -> str:
        dims = ", ".join(str(d) for d in self.dims)
        return (
            f'  name: "{self.name}"\n  data_type: {TRITON_TYPES[self.dtype]}\n  dims: [ {dims} ]\n'
        )


def config_text(
    name: str,
    version: int,
    inputs: Sequence[Tensor],
    outputs: Sequence[Tensor],
    max_batch: int,
    max_delay_us: int,
    md5: str,
) -> str:
    """The ``config.pbtxt`` content."""
    blocks = [
        f'name: "{name}"',
        f'platform: "{PLATFORM}"',
        f"max_batch_size: {max_batch}",
        *(f"input {{\n{t.render()}}}" for t in inputs),
        *(f"output {{\n{t.render()}}}" for t in outputs),
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {max_delay_us}\n}}",
        "instance_group {\n  count: 1\n  kind: KIND_CPU\n}",
        'model_repository_agents {\n  agents {\n    name: "checksum"\n    parameters {\n'
        f'      key: "MD5:{version}/{MODEL_FILE}"\n      value: "{md5}"\n    }}\n  }}\n}}',
    ]
    return "\n".join(blocks) + "\n"


def write_repository(
    folder: Path,
    name: str,
    version: int,
    model_bytes: bytes,
    inputs: Sequence[Tensor],
    outputs: Sequence[Tensor],
    max_batch: int,
    max_delay_us: int = 2000,
) -> list[Path]:
    """Write ``folder/<name>/config.pbtxt`` and ``folder/<name>/<version>/model.onnx``."""
    model_dir = folder / name / str(version)
    model_dir.mkdir(parents=True)
    md5 = hashlib.md5(model_bytes, usedforsecurity=False).hexdigest()
    config = config_text(name, version, inputs, outputs, max_batch, max_delay_us, md5)
    written = [model_dir / MODEL_FILE, folder / name / "config.pbtxt"]
    write_atomic(written[0], model_bytes)
    write_atomic(written[1], config.encode())
    return written
