"""`batchml demo` as the README runs it, scaled down: every stage runs and leaves what it says.

One run serves both tests; the second opens its report.html in headless Chromium,
since a PNG that decodes in Python can still show as a broken image in a browser.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime as ort
import pytest

from batchml.registry import Registry
from tests.unit.browser import rendered_images
from tests.unit.package_fixtures import Runtime, run_without_batchml

STAGES = (
    "1. sample",
    "2. data: split and normalisation",
    "3. hyper-parameter search",
    "4. held-out evaluation",
    "5. publish",
    "6. package",
    "7. batched inference",
    "8. report",
)


class Demo(NamedTuple):
    work: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """One scaled-down demo run, shared: it takes most of a minute."""
    home = tmp_path_factory.mktemp("demo")
    work = home / "w"
    result = subprocess.run(
        [sys.executable, "-m", "batchml.cli", "demo", "--workdir", str(work),
         "--events", "20000", "--files", "2", "--trials", "4", "--workers", "2"],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "HOME": str(home)},  # no user site configs
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Demo(work, result)


def test_demo_runs_every_stage_on_the_embedded_default(demo: Demo) -> None:
    work, result = demo
    out = result.stdout
    assert "site local (local)" in out
    for stage in STAGES:  # each stage ran to its end and printed its time
        assert re.search(rf"^{re.escape(stage)}: \d+\.\d s$", out, re.MULTILINE), stage
    assert len(list((work / "data").glob("*.root"))) == 4

    auc, package_auc = _number(r"test AUC (\d\.\d+)", out), _number(r"package AUC (\d\.\d+)", out)
    assert auc > 0.6
    assert abs(package_auc - auc) < 1e-3  # the deployed model scores as torch did

    registry = Registry(work / "registry", create=False)
    assert registry.aliases("demo-mlp") == {"production": 1}
    version = registry.get("demo-mlp@production")
    assert version.metrics["test_auc"] > 0.6
    assert version.lineage["hpo_study"].startswith("demo-")
    assert len(version.lineage["data"]) == 4
    assert version.signature["inputs"][0]["shape"] == ["batch", 20]

    package = work / "packages" / "demo-mlp-v1"
    session = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    events = np.random.default_rng(0).normal(size=(3, 20)).astype(np.float32)
    (scores,) = session.run(None, {"features": events})
    assert scores.shape == (3, 1)
    alone = run_without_batchml(package, "features", events, work)  # only numpy and ORT
    np.testing.assert_allclose(alone, scores, rtol=1e-6)
    assert (package / "triton").is_dir()
    assert "  moving the folder into place" in out.splitlines()  # the build's last step

    page = (work / "report.html").read_text()
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) >= 4  # study plots, ROC, inference benchmark
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert str(package) in page
    assert "Traceback" not in result.stderr


def test_the_demo_package_runs_in_onnxruntime_1_16_as_torch(
    demo: Demo, old_onnxruntime: Runtime
) -> None:
    import torch

    version = Registry(demo.work / "registry", create=False).get("demo-mlp@production")
    events = np.random.default_rng(1).normal(size=(64, 20)).astype(np.float32)
    expected = version.load_exported().module()(torch.from_numpy(events)).detach().numpy()
    package = demo.work / "packages" / "demo-mlp-v1"
    got = run_without_batchml(package, "features", events, demo.work, old_onnxruntime)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.chromium
def test_demo_report_shows_every_plot_in_a_browser(demo: Demo) -> None:
    page = demo.work / "report.html"
    images = rendered_images(page)
    assert len(images) == page.read_text().count("<img ")
    assert len(images) >= 4  # study plots, ROC, inference benchmark
    broken = [i for i, image in enumerate(images) if not (image.complete and image.width > 0)]
    assert not broken, f"images {broken} of {page} did not load in Chromium: {images}"


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in the output:\n{text}"
    return float(found[1])
