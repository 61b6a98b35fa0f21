"""A Triton model repository for the package: ``triton/<name>/config.pbtxt`` and ``<N>/``.

Triton reads only version folders named by plain integers (``1``, not
``0001``), so the folder is the registry version number. The configuration
is protobuf text format of Triton's ``ModelConfig``: inputs and outputs without
the batch dimension (``max_batch_size`` stands for it), server-side dynamic
batching, and one CPU instance (edit ``instance_group`` for GPUs).

Two backends serve the same ``model.onnx``: ``onnxruntime`` (the platform
``onnxruntime_onnx`` of stock Triton servers) and ``python``, for servers whose
only backend is python (the one in the nvidia-pytriton wheel), with
``model.py`` (batchml/package/triton/model.py) running the model with ONNX
Runtime. Neither applies ``preprocess.json``: clients do.

The ``checksum`` repository agent (the MD5 of each model file, so a copy
corrupted on its way to the server is refused at load time) is opt-in: a
server built without that agent refuses every model that names it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from batchml._fs import write_atomic
from batchml.errors import InvalidValue

Backend = Literal["onnxruntime", "python"]
BACKENDS: tuple[Backend, ...] = ("onnxruntime", "python")
MODEL_FILE = "model.onnx"
PYTHON_MODEL_FILE = "model.py"
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

    def __post_init__(self) -> None:
        if self.dtype not in TRITON_TYPES:
            raise InvalidValue(
                f"the model's tensor {self.name!r} is {self.dtype}, which batchml does not "
                "declare in a Triton configuration",
                hint=f"give the model inputs and outputs of {', '.join(TRITON_TYPES)}, "
                "casting inside the model",
            )

    def render(self) -> str:
        dims = ", ".join(str(d) for d in self.dims)
        return (
            f'  name: "{self.name}"\n  data_type: {TRITON_TYPES[self.dtype]}\n  dims: [ {dims} ]\n'
        )


@dataclass(frozen=True)
class TritonOptions:
    """Which Triton backend runs the model, whether the checksum agent guards it, batching delay."""

    backend: Backend = "onnxruntime"
    checksum: bool = False
    max_delay_us: int = 2000


def config_text(
    name: str,
    inputs: Sequence[Tensor],
    outputs: Sequence[Tensor],
    max_batch: int,
    options: TritonOptions,
    md5: dict[str, str],
) -> str:
    """The ``config.pbtxt`` content; ``md5`` maps ``<version>/<file>`` to its MD5 (checksum)."""
    engine = (
        'platform: "onnxruntime_onnx"' if options.backend == "onnxruntime" else 'backend: "python"'
    )
    blocks = [
        f'name: "{name}"',
        engine,
        f"max_batch_size: {max_batch}",
        *(f"input {{\n{t.render()}}}" for t in inputs),
        *(f"output {{\n{t.render()}}}" for t in outputs),
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {options.max_delay_us}\n}}",
        "instance_group {\n  count: 1\n  kind: KIND_CPU\n}",
    ]
    if options.checksum:
        parameters = "".join(
            f'    parameters {{\n      key: "MD5:{path}"\n      value: "{digest}"\n    }}\n'
            for path, digest in md5.items()
        )
        blocks.append(
            f'model_repository_agents {{\n  agents {{\n    name: "checksum"\n{parameters}  }}\n}}'
        )
    return "\n".join(blocks) + "\n"


def write_repository(
    folder: Path,
    name: str,
    version: int,
    model_bytes: bytes,
    inputs: Sequence[Tensor],
    outputs: Sequence[Tensor],
    max_batch: int,
    options: TritonOptions | None = None,
) -> list[Path]:
    """Write ``folder/<name>/config.pbtxt`` and the model files of ``folder/<name>/<version>/``."""
    options = options or TritonOptions()
    model_dir = folder / name / str(version)
    model_dir.mkdir(parents=True)
    files = {MODEL_FILE: model_bytes}
    if options.backend == "python":
        files[PYTHON_MODEL_FILE] = python_model()
    md5 = {
        f"{version}/{file}": hashlib.md5(data, usedforsecurity=False).hexdigest()
        for file, data in files.items()
    }
    written = [model_dir / file for file in files]
    for path, data in zip(written, files.values(), strict=True):
        write_atomic(path, data)
    config = folder / name / "config.pbtxt"
    write_atomic(config, config_text(name, inputs, outputs, max_batch, options, md5).encode())
    return [*written, config]


def python_model() -> bytes:
    """The python backend's ``model.py``, as shipped with batchml."""
    return resources.files("batchml.package.triton").joinpath("model.py").read_bytes()
