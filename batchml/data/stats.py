"""Per-feature mean, std, min and max from one streaming pass, stored as JSON for the packager.

Normalisation constants must come from the training data without holding it in
memory, and must travel with the model (the packager copies this JSON into the
model's metadata), so inference normalises exactly as training did.
Batches are combined with Chan's parallel update, which stays accurate where
summing squares in float32 would not (features like ``ht`` reach 10^3).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from batchml._fs import write_atomic

FORMAT_VERSION = 1


class FeatureStats:
    """Running count, mean, variance, min and max of each column of a feature matrix."""

    def __init__(self, columns: Sequence[str]) -> None:
        width = len(columns)
        self.columns = tuple(columns)
        self.count = 0
        self.mean = np.zeros(width)
        self._m2 = np.zeros(width)
        self.min = np.full(width, np.inf)
        self.max = np.full(width, -np.inf)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (what a normalisation layer divides by)."""
        return np.sqrt(self._m2 / self.count) if self.count else np.zeros_like(self._m2)

    def update(self, features: Any) -> None:
        """Add a batch (an (n, F) array or tensor)."""
        block = np.asarray(features, dtype=np.float64)
        if block.ndim != 2 or block.shape[1] != len(self.columns):
            raise ValueError(f"expected (n, {len(self.columns)}) features, got {block.shape}")
        n = len(block)
        if n == 0:
            return
        mean, m2 = block.mean(axis=0), block.var(axis=0) * n
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self._m2 = self._m2 + m2 + delta**2 * self.count * n / total
        self.count = total
        self.min = np.minimum(self.min, block.min(axis=0))
        self.max = np.maximum(self.max, block.max(axis=0))

    @classmethod
    def scan(
        cls, batches: Iterable[Any], columns: Sequence[str], max_events: int | None = None
    ) -> FeatureStats:
        """Statistics from batches (anything with ``.features``), over at most ``max_events``."""
        stats = cls(columns)
        for batch in batches:
            features = np.asarray(batch.features)
            if max_events is not None:
                features = features[: max_events - stats.count]
            stats.update(features)
            if max_events is not None and stats.count >= max_events:
                break
        return stats

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "count": self.count,
            "features": {
                name: {
                    "mean": float(self.mean[i]),
                    "std": float(self.std[i]),
                    "min": float(self.min[i]),
                    "max": float(self.max[i]),
                }
                for i, name in enumerate(self.columns)
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureStats:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"feature statistics format {data.get('format_version')} unknown")
        features = data["features"]
        stats = cls(list(features))
        stats.count = int(data["count"])
        values = {
            k: np.array([f[k] for f in features.values()]) for k in ("mean", "std", "min", "max")
        }
        stats.mean, stats.min, stats.max = values["mean"], values["min"], values["max"]
        stats._m2 = values["std"] ** 2 * stats.count
        return stats

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write JSON atomically (batchml._fs: a reader never sees half of it)."""
        write_atomic(Path(path), json.dumps(self.to_dict(), indent=1).encode())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureStats:
        return cls.from_dict(json.loads(Path(path).read_text()))
