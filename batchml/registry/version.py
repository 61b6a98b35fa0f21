"""One committed version as a reader sees it: its record, files, attachments, artifacts loaded."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchml.registry.artifacts import INPUT_EXAMPLE
from batchml.registry.attachments import Attachment, committed_kinds, read_attachment
from batchml.registry.layout import Layout
from batchml.registry.manifest import FILES
from batchml.registry.registry_errors import NotFound


@dataclass(frozen=True)
class ModelVersion:
    """A version that passed its checks when it was read (``Registry.get`` verifies it).

    ``manifest`` is the immutable record; ``annotations`` (description, tags)
    are the mutable notes kept beside it; attachments (a package built from
    it...) are write-once folders added later, each checked when it is read.
    """

    name: str
    version: int
    path: Path
    digest: str
    manifest: dict[str, Any]
    layout: Layout = field(repr=False, compare=False)
    annotations: dict[str, Any] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"batchml:{self.name}/{self.version}"

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.manifest.get("metrics", {}))

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.manifest.get("params", {}))

    @property
    def signature(self) -> dict[str, Any]:
        return dict(self.manifest.get("signature") or {})  # None: published without an example

    @property
    def lineage(self) -> dict[str, Any]:
        return dict(self.manifest.get("lineage", {}))

    @property
    def files(self) -> list[str]:
        return sorted(self.manifest["files"])

    def file(self, rel: str) -> Path:
        """The path of one stored file; NotFound lists the files there are."""
        if rel not in self.manifest["files"]:
            raise NotFound(
                f"{self.uri} has no file {rel!r}", hint=f"it has: {', '.join(self.files)}"
            )
        return self.path / FILES / rel

    def attachments(self) -> list[str]:
        """The kinds attached to this version, such as ``onnx-package`` (listed, not hashed)."""
        return committed_kinds(self.layout, self.name, self.version)

    def attachment(self, kind: str) -> Attachment:
        """One attachment, every file hashed and its binding to this version's digest checked.

        CorruptVersion names the file that differs and NotFound lists the kinds
        there are; a corrupt or unfinished attachment is never returned.
        """
        return read_attachment(self.layout, self.name, self.version, self.digest, kind)

    def input_example(self) -> dict[str, Any]:
        """The stored input example as {input name: numpy array}."""
        import numpy as np

        with np.load(io.BytesIO(self.file(INPUT_EXAMPLE).read_bytes())) as data:
            return {name: data[name] for name in data.files}

    def load_state_dict(self) -> dict[str, Any]:
        import torch

        model = self.manifest.get("model", {})
        state: dict[str, Any] = torch.load(
            self.file(model.get("state_dict", "")), weights_only=True
        )
        return state

    def load_exported(self) -> Any:
        """The ``torch.export`` program, callable as ``.module()(*inputs)``."""
        import torch

        model = self.manifest.get("model", {})
        if "exported" not in model:
            raise NotFound(
                f"{self.uri} has no exported program: "
                f"{model.get('exported_error', 'the model was not a torch module')}",
                hint="load the state dict into the model class named in the record instead",
            )
        return torch.export.load(self.file(model["exported"]))
