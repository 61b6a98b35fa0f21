"""A small published model and its package, built once per test module (exports take seconds)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
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


FRESH = """
import importlib.util, sys
sys.path.append(sys.argv[1])
assert importlib.util.find_spec("batchml") is None, "batchml must not be importable"
import numpy as np, onnxruntime as ort
folder, name, inputs, outputs = sys.argv[2:6]
session = ort.InferenceSession(folder + "/model.onnx", providers=["CPUExecutionProvider"])
np.save(outputs, session.run(None, {name: np.load(inputs)})[0])
"""


def run_without_batchml(package: Path, input_name: str, x: np.ndarray, work: Path) -> np.ndarray:
    """The package's first output for ``x``, computed by a Python with only numpy and ORT."""
    np.save(work / "x.npy", x)
    site = sysconfig.get_paths()["purelib"]
    # -I: no environment, no user site, no script folder; -S: no .pth files, so the
    # editable install's import hook is never installed and batchml stays hidden.
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", FRESH, site, str(package), input_name,
         str(work / "x.npy"), str(work / "y.npy")],
        capture_output=True, text=True, timeout=60, cwd=work, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return np.asarray(np.load(work / "y.npy"))
