"""PyTorch -> ONNX at exactly the opset asked for, with a batch dimension that really is symbolic.

The dynamo exporter is tried first, on the registry's ``torch.export`` program
(or on the caller's module, exported with a dynamic batch from an example of
at least 2 rows: a batch of 1 gets specialised, pytorch/pytorch#151582). It
raises an opset below the lowest it implements and converts the file back,
keeping its own opset (with only a log line) where that fails; so the file's
own opset is read, and lowered with onnx's version converter where it differs.
If that fails, the TorchScript exporter with ``dynamic_axes`` is tried, which
writes the opset asked for or fails. Either way the graph is made portable
(``portable.py``) and run by ONNX Runtime at batch 1 and at batch N, because a
graph that declares a symbolic batch can still have a constant one baked in.
An opset neither exporter can write is refused, naming the lowest that works.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from batchml._compat.torch_onnx import quiet_export
from batchml.errors import BatchmlError
from batchml.package.portable import make_portable, opset_of

CHECK_BATCH = 3  # the "N" of the batch check: neither 1 nor the example's usual sizes


class ExportError(BatchmlError):
    """Neither exporter produced a graph at the opset asked for that accepts batch 1 and batch N."""


class OpsetRefused(ExportError):
    """This model cannot be written at the opset asked for; the hint names the lowest that can."""

    exit_code = 2


@dataclass(frozen=True)
class TorchModel:
    """What is exported and compared against: the program, and a callable for torch eager."""

    program: Any  # torch.export.ExportedProgram
    input_names: list[str]

    def __call__(self, arrays: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """torch's outputs for numpy inputs, as a list of numpy arrays."""
        import torch

        with torch.no_grad(), quiet_export():
            out = self.program.module()(*(torch.from_numpy(arrays[n]) for n in self.input_names))
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [o.detach().numpy() for o in outs]


@dataclass(frozen=True)
class Exported:
    """The ONNX model and how it was made (recorded in the metadata and validation.json)."""

    model: Any  # onnx.ModelProto
    exporter: str  # "dynamo" or "torchscript"
    opset: int  # the file's own ai.onnx opset, the one asked for
    dynamo_error: str | None = None
    converted_from: int | None = None  # the dynamo exporter's opset, lowered by onnx's converter


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
    """The ONNX model at ``opset``, portable, checked at batch 1 and N; or OpsetRefused."""
    dynamo_model = None
    try:
        dynamo_model = _dynamo(model, output_names, opset)
        written = opset_of(dynamo_model)
        onnx_model = dynamo_model if written == opset else convert_opset(dynamo_model, opset)
        _finish(onnx_model, example, opset)
        return Exported(
            onnx_model, "dynamo", opset, converted_from=None if written == opset else written
        )
    except Exception as exc:  # the exporters fail in many ways; the fallback is the remedy
        dynamo_error = _summary(exc)
    try:
        onnx_model = _torchscript(model, example, output_names, opset)
        _finish(onnx_model, example, opset)
    except Exception as exc:
        failed = f"dynamo: {dynamo_error}; torchscript: {_summary(exc)}"
        lowest = None
        if dynamo_model is not None and opset_of(dynamo_model) > opset:
            lowest = _lowest_working(model, example, output_names, dynamo_model, opset)
        if lowest is None:
            raise ExportError(
                f"ONNX export at opset {opset} failed with both exporters: {failed}",
                hint="try another --opset, or simplify the model's forward (no data-dependent "
                "control flow on the batch size)",
            ) from exc
        raise OpsetRefused(
            f"this model cannot be written at ONNX opset {opset}: {failed}",
            hint=f"use --opset {lowest}, the lowest at which it exports (ONNX Runtime 1.16, "
            "in CMSSW, runs opsets up to 19)",
        ) from exc
    return Exported(onnx_model, "torchscript", opset, dynamo_error)


def convert_opset(onnx_model: Any, opset: int) -> Any:
    """The model converted to ``opset`` by onnx's version converter; ExportError if it cannot."""
    from onnx import version_converter

    written = opset_of(onnx_model)
    try:
        converted = version_converter.convert_version(onnx_model, opset)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[-1].split("failed: ")[-1][:300]
        raise ExportError(
            f"the file has opset {written} and onnx's version converter cannot make it "
            f"{opset}: {reason}"
        ) from exc
    return converted


def _finish(onnx_model: Any, example: Mapping[str, np.ndarray], opset: int) -> None:
    """Check the file's opset, make it portable, and run it at batch 1 and N."""
    if opset_of(onnx_model) != opset:
        raise ExportError(f"the exporter wrote opset {opset_of(onnx_model)}, not {opset}")
    make_portable(onnx_model)
    check_batches(onnx_model, example)


def _lowest_working(
    model: TorchModel,
    example: Mapping[str, np.ndarray],
    output_names: list[str],
    dynamo_model: Any,
    opset: int,
) -> int | None:
    """The lowest opset above ``opset`` (up to the dynamo exporter's own) that either route writes.

    Runs only on the way to refusing: up to one conversion and one TorchScript
    export per opset between the one asked for and the dynamo exporter's.
    """
    written = opset_of(dynamo_model)
    for candidate in range(opset + 1, written + 1):
        routes = [lambda k: convert_opset(dynamo_model, k)]
        if candidate < written:
            routes.append(lambda k: _torchscript(model, example, output_names, k))
        for route in routes:
            try:
                _finish(route(candidate), example, candidate)
                return candidate
            except Exception:  # this route cannot write it; the next may
                continue
    return None


def _summary(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:300]}"


def _dynamo(model: TorchModel, output_names: list[str], opset: int) -> Any:
    import torch

    with quiet_export():
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
