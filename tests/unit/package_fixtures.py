"""A small published model and its package (exports take seconds); the runtimes that load it.

A package must load where users put it without batchml: ``run_without_batchml``
runs it in a Python holding only numpy and ONNX Runtime, either this
environment's (batchml hidden) or ``old_onnxruntime()``'s, a virtual
environment with only ``onnxruntime==1.16.3`` and ``numpy<2`` from PyPI, the
ONNX Runtime of recent CMSSW releases. That one is built once per machine and
Python version into the user's cache folder, in a temporary folder renamed into
place, so concurrent test sessions never see half of one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
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
version, folder, model, name, inputs, outputs = sys.argv[2:8]
assert ort.__version__ == version, f"onnxruntime {ort.__version__}, expected {version}"
session = ort.InferenceSession(f"{folder}/{model}", providers=["CPUExecutionProvider"])
np.save(outputs, session.run(None, {name: np.load(inputs)})[0])
"""
OLD_ONNXRUNTIME = "1.16.3"  # recent CMSSW releases; it knows IR versions up to 9
OLD_REQUIREMENTS = (f"onnxruntime=={OLD_ONNXRUNTIME}", "numpy<2")


@dataclass(frozen=True)
class Runtime:
    """A Python interpreter, its site-packages folder and the onnxruntime version there."""

    python: str
    site: str
    onnxruntime: str


def this_runtime() -> Runtime:
    import onnxruntime

    return Runtime(sys.executable, sysconfig.get_paths()["purelib"], onnxruntime.__version__)


def old_onnxruntime() -> Runtime:
    """The cached virtual environment with only onnxruntime 1.16.3 and numpy<2; built if missing."""
    tag = f"onnxruntime-{OLD_ONNXRUNTIME}-py{sys.version_info[0]}.{sys.version_info[1]}"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "batchml-tests"
    venv = cache / tag
    if not (venv / "bin" / "python").exists():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{tag}-", dir=cache))
        try:
            _build_venv(staging)
            staging.rename(venv)  # fails if another session got there first: its venv is used
        except OSError:
            if not (venv / "bin" / "python").exists():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return Runtime(python, site, OLD_ONNXRUNTIME)


def _build_venv(folder: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    install = subprocess.run(
        [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", "--no-input", *OLD_REQUIREMENTS],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert install.returncode == 0, f"pip install {' '.join(OLD_REQUIREMENTS)}:\n{install.stderr}"


def run_without_batchml(
    package: Path,
    input_name: str,
    x: np.ndarray,
    work: Path,
    runtime: Runtime | None = None,
    model: str = "model.onnx",
) -> np.ndarray:
    """The first output of ``model`` for ``x``, computed by a Python with only numpy and ORT."""
    runtime = runtime or this_runtime()
    np.save(work / "x.npy", x)
    # -I: no environment, no user site, no script folder; -S: no .pth files, so the
    # editable install's import hook is never installed and batchml stays hidden.
    run = subprocess.run(
        [runtime.python, "-I", "-S", "-c", FRESH, runtime.site, runtime.onnxruntime,
         str(package), model, input_name, str(work / "x.npy"), str(work / "y.npy")],
        capture_output=True, text=True, timeout=60, cwd=work, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return np.asarray(np.load(work / "y.npy"))
