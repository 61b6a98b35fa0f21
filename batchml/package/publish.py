"""Putting a built package back into the registry, next to the version it came from.

Registry versions are immutable (the manifest pins every byte), so a package
cannot be added to its source version after the fact. It is published as a
version of ``<name>.onnx`` carrying the same signature, input example,
preprocessing, metrics and HPO lineage, with the source URI and digest in its
params and a ``from-v<N>`` tag: ``<name>.onnx@production`` can then be moved
independently of the training version, and ``registry diff`` works across them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from batchml.errors import InvalidValue
from batchml.package.manifest import check_manifest

if TYPE_CHECKING:
    from batchml.registry import ModelVersion, Registry

SUFFIX = ".onnx"
CARRIED_LINEAGE = ("hpo_study", "hpo_trial", "data")


def publish_package(registry: Registry, package_dir: str | Path) -> ModelVersion:
    """Publish the package folder as a new version of ``<source name>.onnx``; returns it."""
    folder = Path(package_dir)
    problems = check_manifest(folder)
    if problems:
        raise InvalidValue(
            f"{folder} does not match its MANIFEST: {'; '.join(problems[:5])}",
            hint="rebuild the package with 'batchml package build'",
        )
    meta = json.loads((folder / "metadata.json").read_text())
    source = registry.get(meta["registry_uri"].removeprefix("batchml:"))
    if f"sha256:{source.digest}" != meta["digest"]:
        raise InvalidValue(
            f"{folder} was built from {meta['digest']}, "
            f"but {source.uri} is now sha256:{source.digest}",
            hint="the registry was rebuilt under it; package the version again",
        )
    variables = {e["name"]: e["variables"] for e in source.signature["inputs"] if "variables" in e}
    return registry.publish(
        f"{source.name}{SUFFIX}",
        folder,
        input_example=source.input_example(),
        variables=variables,
        preprocessing=source.manifest["preprocessing"],
        metrics=source.metrics,
        params={
            "packaged_from": {"uri": source.uri, "digest": meta["digest"]},
            "exporter": meta["exporter"],
            "opset": meta["opset"],
        },
        lineage={k: v for k, v in source.lineage.items() if k in CARRIED_LINEAGE and v is not None},
        tags=[f"from-v{source.version}"],
    )
