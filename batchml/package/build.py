"""``build``: one registry version -> a deployable folder, written in a staging folder and renamed.

The folder holds ``model.onnx`` (metadata inside), ``preprocess.json``,
``model.cmssw.onnx`` (the same model taking its inputs as CMSSW's reader of
``preprocess.json`` lays them out, where it can), ``metadata.json``,
``validation.json``, optionally ``model.int8.onnx`` (dynamic int8 weights, for
CPUs) and ``model.fp16.onnx`` (float16 inside, float32 at its inputs and
outputs, for GPUs), the Triton repository under ``triton/``, ``benchmark.csv``
and ``benchmark.png``, and a ``MANIFEST`` (``sha256sum -c`` reads it) and
``MANIFEST.json`` with the sha256 and size of every other file. Nothing
appears at the destination until every step, validation included, has passed;
a failed build leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchml._fs import check_destination, fsync_dir, temp_beside, write_atomic
from batchml.errors import InvalidValue
from batchml.package import triton
from batchml.package.checksums import write_manifest
from batchml.package.cmssw import FILE as CMSSW_MODEL
from batchml.package.cmssw import cmssw_feeds, cmssw_model, feedable
from batchml.package.export import Exported, TorchModel, export_onnx, program_from_module
from batchml.package.metadata import metadata_props, preprocess_spec, set_metadata
from batchml.package.validate import Tolerance, ValidationFailed, failures, validate

if TYPE_CHECKING:
    from batchml.registry import ModelVersion

Progress = Callable[[str], None]
MODEL = "model.onnx"
REDUCED = {  # precision -> (file, what the validation report says about it)
    "int8": ("model.int8.onnx", "int8 weights change outputs by up to max_abs"),
    "fp16": (
        "model.fp16.onnx",
        "float16 arithmetic changes outputs by up to max_abs (measured on the CPU provider; "
        "CUDA and TensorRT round the same way within a few float16 ulps)",
    ),
}
# The dynamo exporter's own opset (no conversion), written as IR 8: it loads in ONNX
# Runtime 1.16 (CMSSW's; it runs opsets up to 19 and IR up to 9) and every newer one.
DEFAULT_OPSET = 18


@dataclass(frozen=True)
class BuildOptions:
    """How to package: the opset of the target ONNX Runtime, the largest batch, extras."""

    opset: int = DEFAULT_OPSET
    max_batch: int = 256
    int8: bool = False
    fp16: bool = False
    tolerance: Tolerance = field(default_factory=Tolerance)
    output_labels: list[str] | None = None
    bench_seconds: float | None = 0.2  # per measured point; None skips the benchmark
    triton: triton.TritonOptions = field(default_factory=triton.TritonOptions)


def build(
    version: ModelVersion,
    out: str | Path,
    options: BuildOptions | None = None,
    *,
    module: Any = None,
    progress: Progress | None = None,
) -> Path:
    """Package ``version`` into the new folder ``out``; returns it.

    ``module`` is the model with the version's weights loaded, needed only when
    the version holds no ``torch.export`` program. ValidationFailed (exit 1)
    when ONNX Runtime and torch disagree beyond ``options.tolerance``.
    """
    options = options or BuildOptions()
    target = _check_target(Path(out), options)
    step = progress or (lambda _: None)
    staging = temp_beside(target)
    staging.mkdir(parents=True)
    try:
        _build_into(staging, version, options, module, step)
        step("moving the folder into place")
        staging.rename(target)
        fsync_dir(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_target(target: Path, options: BuildOptions) -> Path:
    from onnx.defs import onnx_opset_version

    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidValue(
            f"{target} already exists and is not empty",
            hint="choose a new folder with -o, or remove the old package first",
        )
    check_destination(target, "folder", "the package folder")
    newest = onnx_opset_version()
    if options.max_batch < 1 or not 9 <= options.opset <= newest:
        raise InvalidValue(
            f"max batch {options.max_batch} and opset {options.opset} are out of range",
            hint=f"use --max-batch 1 or more and an --opset from 9 to {newest}",
        )
    return target.absolute()


def _build_into(
    folder: Path, version: ModelVersion, options: BuildOptions, module: Any, step: Progress
) -> None:
    step(f"loading {version.uri}")
    example = version.input_example()
    model = TorchModel(_program(version, module, example), list(example))
    outputs = model(example)
    output_names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    labels = options.output_labels or list(
        version.manifest["preprocessing"].get("output_labels", [])
    )
    spec = preprocess_spec(
        version.signature, version.manifest["preprocessing"], output_names, labels
    )

    step(f"exporting to ONNX (opset {options.opset})")
    exported = export_onnx(model, example, output_names, options.opset)
    exported.model.model_version = version.version
    set_metadata(exported.model, metadata_props(version, spec, exported.exporter, exported.opset))
    model_bytes = exported.model.SerializeToString()

    step("validating against torch")
    report = {
        "model": validate(model, model_bytes, example, spec, options.max_batch, options.tolerance)
    }
    _require(report["model"], version, MODEL)
    write_atomic(folder / MODEL, model_bytes)
    if feedable(spec):
        step("writing the model in CMSSW's input layout")
        cmssw_bytes = cmssw_model(exported.model, spec).SerializeToString()
        report["cmssw"] = validate(
            model,
            cmssw_bytes,
            example,
            spec,
            options.max_batch,
            options.tolerance,
            layout=cmssw_feeds,
        )
        _require(report["cmssw"], version, CMSSW_MODEL)
        write_atomic(folder / CMSSW_MODEL, cmssw_bytes)
    for precision, wanted in (("int8", options.int8), ("fp16", options.fp16)):
        if wanted:
            step(f"writing the {precision} model")
            report[precision] = _reduced(precision, folder, model, example, spec, options)
    write_atomic(folder / "validation.json", _json(report))
    write_atomic(folder / "preprocess.json", _json(spec))
    write_atomic(
        folder / "metadata.json", _json(_metadata(version, exported, options, output_names))
    )

    step("writing the Triton repository")
    triton.write_repository(
        folder / "triton",
        version.name,
        version.version,
        model_bytes,
        _tensors(version.signature["inputs"]),
        [
            triton.Tensor(n, str(o.dtype), tuple(o.shape[1:]))
            for n, o in zip(output_names, outputs, strict=True)
        ],
        options.max_batch,
        options.triton,
    )
    if options.bench_seconds is not None:
        from batchml.package.bench import benchmark

        step("measuring latency and throughput")
        benchmark(folder, max_batch=options.max_batch, seconds=options.bench_seconds)
    step("writing the MANIFEST")
    write_manifest(folder)


def _require(report: dict[str, Any], version: ModelVersion, name: str) -> None:
    if not report["passed"]:
        raise ValidationFailed(
            f"{version.uri}: ONNX Runtime differs from torch in {name}: "
            + "; ".join(failures(report)[:5]),
            hint="try another --opset; the full comparison is in the error above",
        )


def _program(version: ModelVersion, module: Any, example: dict[str, Any]) -> Any:
    """The version's exported program, or one exported from ``module`` with its weights."""
    if "exported" in version.manifest.get("model", {}):
        return version.load_exported()
    if module is None:
        version.load_exported()  # raises NotFound, saying why there is none
    module.load_state_dict(version.load_state_dict())
    return program_from_module(module, example)


def _reduced(
    precision: str,
    folder: Path,
    model: TorchModel,
    example: dict[str, Any],
    spec: dict[str, Any],
    options: BuildOptions,
) -> dict[str, Any]:
    """A reduced-precision copy of model.onnx, validated like it; its accuracy change is
    stated, not held to the float32 tolerance (the user decides whether it is enough)."""
    name, note = REDUCED[precision]
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(folder / MODEL, folder / name, weight_type=QuantType.QInt8)
    else:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        # float32 inputs and outputs: preprocess.json and BatchedSession stay as they are
        half = convert_float_to_float16(onnx.load(folder / MODEL), keep_io_types=True)
        write_atomic(folder / name, half.SerializeToString())
    report = validate(
        model, (folder / name).read_bytes(), example, spec, options.max_batch, options.tolerance
    )
    report["note"] = f"stated, not enforced: {note}"
    return report


def _tensors(entries: list[dict[str, Any]]) -> list[triton.Tensor]:
    return [
        triton.Tensor(e["name"], e["dtype"], tuple(int(d) for d in e["shape"][1:])) for e in entries
    ]


def _metadata(
    version: ModelVersion, exported: Exported, options: BuildOptions, outputs: list[str]
) -> dict[str, Any]:
    from batchml import __version__

    return {
        "format": "batchml-package",
        "format_version": 1,
        "registry_uri": version.uri,
        "name": version.name,
        "version": version.version,
        "digest": f"sha256:{version.digest}",
        "exporter": exported.exporter,
        "dynamo_error": exported.dynamo_error,
        "opset": exported.opset,
        "opset_converted_from": exported.converted_from,
        "onnx_ir_version": exported.model.ir_version,
        "max_batch": options.max_batch,
        "signature": version.signature,
        "outputs": outputs,
        "batchml": __version__,
    }


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=1) + "\n").encode()
