"""Putting a built package back into the registry, attached to the version it came from.

The package is attached (``Registry.attach``) to its source version as kind
``onnx-package``: the version itself stays immutable (its digest does not
change), the package lives beside it under ``attachments/``, is bound to that
version's digest and is hash-checked when read. Attachments are write-once,
so a version carries at most one package; a package of a changed model means
publishing that model as a new version first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from batchml.errors import InvalidValue
from batchml.package.checksums import check_manifest, read_metadata

if TYPE_CHECKING:
    from batchml.registry import Attachment, Registry

KIND = "onnx-package"


def publish_package(registry: Registry, package_dir: str | Path) -> Attachment:
    """Attach the package folder to the version it was built from, as ``onnx-package``."""
    folder = Path(package_dir)
    problems = check_manifest(folder)
    if problems:
        raise InvalidValue(
            f"{folder} does not match its MANIFEST: {'; '.join(problems[:5])}",
            hint="rebuild the package with 'batchml package build'",
        )
    meta = read_metadata(folder)
    source = registry.get(meta["registry_uri"].removeprefix("batchml:"))
    if f"sha256:{source.digest}" != meta["digest"]:
        raise InvalidValue(
            f"{folder} was built from {meta['digest']}, "
            f"but {source.uri} is now sha256:{source.digest}",
            hint="the registry was rebuilt under it; package the version again",
        )
    return registry.attach(source, KIND, folder)
