"""PyTorch -> ONNX with a batch dimension that really is symbolic.

The dynamo exporter is tried first, on the registry's ``torch.export`` program
(or on the caller's module, exported with a dynamic batch from an example of
at least 2 rows: a batch of 1 gets specialised, pytorch/pytorch#151582). If it
fails, the TorchScript exporter with ``dynamic_axes`` is tried. Either way the
graph is then run by ONNX Runtime at batch 1 and at batch N, because a graph
that declares a symbolic batch can still have a constant one baked in.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from batchml.errors import BatchmlError

REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"
CHECK_BATCH = 3  # the "N" of the batch check: neither 1 nor the example's usual sizes


class ExportError(BatchmlError):
    """Neither exporter produced a graph that accepts batch 1 and batch N."""


@dataclass(frozen=True)
class TorchModel:
    """What is exported and compared against: the program, and a callable for torch eager."""

    program: Any  # torch.export.ExportedProgram
    input_names: list[str]

    def __call__(self, arrays: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """torch's outputs for numpy inputs, as a list of numpy arrays."""
        import torch

        with torch.no_grad(), _quiet_torch():
            out = self.program.module()(*(torch.from_numpy(arrays[n]) for n in self.input_names))
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [o.detach().numpy() for o in outs]


@dataclass(frozen=True)
class Exported:
    """The ONNX model and how it was made (recorded in the metadata and validation.json)."""

    model: Any  # onnx.ModelProto
    exporter: str  # "dynamo" or "torchscript"
    opset: int
    dynamo_error: str | None = None


def program_from_module(module: Any, example: Mapping[str, np.ndarray]) -> Any:
    """``torch.export`` of a caller's module with a dynamic batch (example tiled to >= 2 rows)."""
    import torch

    args = tuple(torch.from_numpy(at_least_two(a)) for a in example.values())
    dims = tuple({0: torch.export.Dim("batch")} for _ in args)
    return torch.export.export(module.eval(), args, dynamic_shapes=dims)


def at_least_two(array: np.ndarray) -> np.ndarray:
    return array if len(array) >= 2 else np.concatenate([array] * 2)


def export_onnx(
    model: TorchModel, example: Mapping[str, np.ndarray], output_names: list[str], opset: int
) -> Exported:
    """The ONNX model, from the dynamo exporter or else the TorchScript one; checked at 1 and N."""
    try:
        onnx_model = _dynamo(model, output_names, opset)
        check_batches(onnx_model, example)
        return Exported(onnx_model, "dynamo", opset)
    except Exception as exc:  # the exporters fail in many ways; the fallback is the remedy
        dynamo_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
    try:
        onnx_model = _torchscript(model, example, output_names, opset)
        check_batches(onnx_model, example)
    except Exception as exc:
        raise ExportError(
            f"ONNX export failed with both exporters: dynamo: {dynamo_error}; "
            f"torchscript: {type(exc).__name__}: {str(exc).strip()[:300]}",
            hint="try another --opset, or simplify the model's forward (no data-dependent "
            "control flow on the batch size)",
        ) from exc
    return Exported(onnx_model, "torchscript", opset, dynamo_error)


def _dynamo(model: TorchModel, output_names: list[str], opset: int) -> Any:
    import torch

    with _quiet_torch():
        program = torch.onnx.export(
            model.program,
            dynamo=True,
            input_names=model.input_names,
            output_names=output_names,
            opset_version=opset,
            verbose=False,
        )
    if program is None:  # only when exporting to a file, which this call does not
        raise ExportError("the dynamo exporter returned no program")
    return program.model_proto


def _torchscript(
    model: TorchModel, example: Mapping[str, np.ndarray], output_names: list[str], opset: int
) -> Any:
    """Trace the program's module, kept outside the wrapper's module tree.

    An exported module refuses ``train(False)``, which the TorchScript exporter
    calls on the model it is given, so the wrapper hides it in a list.
    """
    import onnx
    import torch

    graph_module = model.program.module()
    for parameter in graph_module.parameters():
        parameter.requires_grad_(False)

    class Frozen(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = [graph_module]

        def forward(self, *args: Any) -> Any:
            return self.inner[0](*args)

    args = tuple(torch.from_numpy(at_least_two(a)) for a in example.values())
    axes = {name: {0: "batch"} for name in [*model.input_names, *output_names]}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The fallback is chosen on purpose; torch warns that it is legacy and that the
        # traced module's input checks become constants (the batch check below covers that).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            Frozen(),
            args,
            buffer,  # type: ignore[arg-type]  # a file object works; the stub says path only
            dynamo=False,
            input_names=model.input_names,
            output_names=output_names,
            dynamic_axes=axes,
            opset_version=opset,
        )
    return onnx.load_from_string(buffer.getvalue())


def check_batches(onnx_model: Any, example: Mapping[str, np.ndarray]) -> None:
    """Run the graph at batch 1 and batch N; ExportError if an output's batch does not follow."""
    import onnxruntime as ort

    session = ort.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    for n in (1, CHECK_BATCH):
        feeds = {k: np.resize(v, (n, *v.shape[1:])) for k, v in example.items()}
        shapes = [o.shape for o in session.run(None, feeds)]
        if any(not s or s[0] != n for s in shapes):
            raise ExportError(f"the exported graph gives output shapes {shapes} for batch {n}")


class _quiet_torch(warnings.catch_warnings):
    """Silence one FutureWarning torch 2.13 raises from inside its own pytree code.

    ``torch.export`` deep-copies tree specs, whose constructor warns that
    ``LeafSpec`` is deprecated; nothing in batchml uses LeafSpec, so only that
    message is ignored, and only around calls into torch.
    """

    def __enter__(self) -> None:
        super().__enter__()
        warnings.filterwarnings(
            "ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning
        )
        # The exporter logs one warning per torchvision operator it cannot register
        # when torchvision is absent, which it need not be for these models.
        self._registration = logging.getLogger(REGISTRATION_LOGGER)
        self._level = self._registration.level
        self._registration.setLevel(logging.ERROR)

    def __exit__(self, *exc: Any) -> None:
        self._registration.setLevel(self._level)
        super().__exit__(*exc)
