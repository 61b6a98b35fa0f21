"""Packaging a registry version for inference: ONNX, validated, with metadata, Triton, benchmarks.

``build(registry.get("name@production"), "out/")`` writes a folder that ONNX
Runtime, a CMSSW producer (``preprocess.json``) or a Triton server
(``triton/``) loads without batchml; ``publish_package`` attaches it to its
version in the registry. torch is imported only while building.
"""

from batchml.package.attach import publish_package
from batchml.package.build import BuildOptions, build
from batchml.package.checksums import check_manifest
from batchml.package.export import ExportError
from batchml.package.validate import Tolerance, ValidationFailed

__all__ = [
    "BuildOptions",
    "ExportError",
    "Tolerance",
    "ValidationFailed",
    "build",
    "check_manifest",
    "publish_package",
]
