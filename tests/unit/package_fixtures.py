"""A small published model and its package, built once per test module (exports take seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from batchml.package import BuildOptions, build
from batchml.registry import ModelVersion, Registry

VARIABLES = ["pt", "eta", "phi"]
STATS = {
    "format_version": 1,
    "count": 1000,
    "features": {
        "pt": {"mean": 50.0, "std": 20.0, "min": 0.0, "max": 200.0},
        "eta": {"mean": 0.0, "std": 1.5, "min": -2.5, "max": 2.5},
        "phi": {"mean": 0.0, "std": 1.8, "min": -3.1, "max": 3.1},
    },
    "output_labels": ["signal", "background"],
}


class TwoClass(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=-1)


def publish(root: Path) -> ModelVersion:
    torch.manual_seed(0)
    example = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    return Registry(root).publish(
        "jets",
        TwoClass(),
        input_example=example,
        input_names=["x"],
        variables={"x": VARIABLES},
        preprocessing=STATS,
        metrics={"auc": 0.9},
    )


def package(root: Path, out: Path, **options: object) -> Path:
    version = publish(root)
    return build(version, out, BuildOptions(max_batch=32, **options))  # type: ignore[arg-type]
