"""What changed between two versions, key by key: the question asked before a promotion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batchml.registry.version import ModelVersion

SECTIONS = ("metrics", "params", "signature", "preprocessing", "model", "lineage", "files")
_UNSET = "(absent)"


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any


def diff_versions(old: ModelVersion, new: ModelVersion) -> list[Change]:
    """Every leaf value that differs, as dotted keys such as ``metrics.val_loss``.

    Files compare by sha256, so a changed artifact shows even when its name did not.
    Lineage time is left out: it always differs and says nothing.
    """
    before, after = _comparable(old), _comparable(new)
    keys = sorted(set(before) | set(after))
    return [
        Change(k, before.get(k, _UNSET), after.get(k, _UNSET))
        for k in keys
        if before.get(k, _UNSET) != after.get(k, _UNSET)
    ]


def _comparable(version: ModelVersion) -> dict[str, Any]:
    sections = {s: version.manifest.get(s) for s in SECTIONS}
    sections["files"] = {rel: f["sha256"] for rel, f in version.manifest["files"].items()}
    leaves = _leaves(sections)
    leaves.pop("lineage.time", None)
    return leaves


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts flattened to {dotted key: leaf}; lists stay whole (they compare as values)."""
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    leaves: dict[str, Any] = {}
    for key, inner in value.items():
        leaves.update(_leaves(inner, f"{prefix}.{key}" if prefix else str(key)))
    return leaves
