"""Triton python-backend model: runs the package's ``model.onnx`` with ONNX Runtime, nothing more.

batchml never imports this module: ``batchml package build --triton-backend
python`` copies it as ``triton/<name>/<version>/model.py`` beside a copy of
``model.onnx``, for Triton servers whose only backend is ``python`` (the one
bundled in the nvidia-pytriton wheel). It needs numpy and onnxruntime in the
Python that the server's python-backend stub runs (the first ``python3`` on
the server's PATH), and applies exactly what Triton's onnxruntime backend
would: the raw model. Preprocessing (``preprocess.json``) stays with the
client, as it does for the onnxruntime backend (``batchml.inference.TritonSession``
applies it).

Dynamic batching hands ``execute`` several requests at once; their rows are
concatenated into one ONNX Runtime call and the outputs split back per request.

Tensors cross the stub's boundary by DLPack, not as numpy arrays: the stub was
built against numpy 1, and a numpy 2 array handed to ``pb_utils.Tensor``
comes out with the wrong size ("output tensor shape does not match size of
output"). DLPack works with numpy 1 and 2 alike. The stub takes ownership of
an output capsule but renames it to "used_dlpack" where the DLPack protocol
says "used_dltensor", so numpy's capsule destructor would print a traceback
for every output; naming the capsule as the protocol does after the hand-over
tells numpy the tensor is owned elsewhere.
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

_set_capsule_name = ctypes.pythonapi.PyCapsule_SetName
_set_capsule_name.argtypes = [ctypes.py_object, ctypes.c_char_p]
_set_capsule_name.restype = ctypes.c_int


class TritonPythonModel:
    """The interface Triton's python backend calls: initialize, execute, finalize."""

    def initialize(self, args: dict[str, str]) -> None:
        folder = Path(args["model_repository"]) / args["model_version"]
        config = json.loads(args["model_config"])
        self.session = ort.InferenceSession(
            str(folder / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        self.inputs = [t["name"] for t in config["input"]]
        self.outputs = [t["name"] for t in config["output"]]

    def execute(self, requests: list[Any]) -> list[Any]:
        try:
            parts = {
                name: [np.from_dlpack(pb_utils.get_input_tensor_by_name(r, name)) for r in requests]
                for name in self.inputs
            }
            sizes = [len(a) for a in parts[self.inputs[0]]]
            feeds = {name: np.concatenate(arrays) for name, arrays in parts.items()}
            outputs = self.session.run(self.outputs, feeds)
        except Exception as exc:  # every request of the batch learns why
            error = pb_utils.TritonError(f"{type(exc).__name__}: {exc}")
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        responses = []
        start = 0
        for size in sizes:
            tensors = [
                _tensor(name, output[start : start + size])
                for name, output in zip(self.outputs, outputs, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses

    def finalize(self) -> None:
        self.session = None


def _tensor(name: str, array: np.ndarray) -> Any:
    capsule = np.ascontiguousarray(array).__dlpack__()
    tensor = pb_utils.Tensor.from_dlpack(name, capsule)
    _set_capsule_name(capsule, b"used_dltensor")
    return tensor
