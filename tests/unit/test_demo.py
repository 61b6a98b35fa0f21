"""`batchml demo` as the README runs it, scaled down: every stage runs and leaves what it says.

One run serves every test; the last opens its report.html in headless Chromium,
since a PNG that decodes in Python can still show as a broken image in a browser,
and leaves a screenshot of the whole page beside it (report.png).
"""

from __future__ import annotations

import base64
import html
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlparse

import matplotlib.image
import numpy as np
import onnxruntime as ort
import pytest

from batchml.demo.sample import write_sample
from batchml.hpo.report import READING_HEADER
from batchml.registry import Registry
from tests.unit.browser import WIDTH, render, screenshot
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
    assert len(images) >= 6  # rejection, score distributions, study plots, timeline, latency
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
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


def test_demo_report_has_what_an_analyst_reads_first(demo: Demo) -> None:
    work, result = demo
    page = (work / "report.html").read_text()
    for section in ("Inputs", "Performance on held-out events", "Overtraining check",
                    "Hyper-parameter search", "Serving the package", "Run"):  # fmt: skip
        assert f"<h2>{section}</h2>" in page
    held_out = int(_number(r"held-out ([\d,]+) events", result.stdout.replace(",", "")))
    events = _rows(page, "Events per class")
    assert events[0] == ["class", "training", "validation (trials' loss)", "held-out (this page)"]
    assert [r[0] for r in events[1:]] == ["signal", "background", "total"]
    assert int(events[3][3].replace(",", "")) == held_out
    assert sum(int(v.replace(",", "")) for v in events[3][1:]) == 20_000
    assert "branch 'weight'" in html.unescape(page)  # the sample's weights are used: said so
    points = _rows(page, "Working points")
    assert points[0] == ["ε_S asked", "threshold", "ε_S", "ε_B", "background rejection 1/ε_B"]
    assert [r[0] for r in points[1:]] == ["0.5", "0.7", "0.9"]
    assert all(float(r[2]) >= float(r[0]) for r in points[1:])
    ks = _rows(page, "Kolmogorov-Smirnov test")
    assert [r[0] for r in ks[1:]] == ["signal", "background"]
    assert all(0.0 <= float(r[4]) <= 1.0 for r in ks[1:])
    assert "importances are not drawn: 4 completed trial(s)" in page  # too few to mean anything
    assert "one row per CPU slot" in page
    reading = _rows(page, "Data reading per trial")  # every trial read the local sample
    assert reading[0] == list(READING_HEADER) and len(reading) == 5
    assert all(row[5] == "-" and row[6].startswith("local ") for row in reading[1:])
    stages = _rows(page, "Stage times")
    assert [r[0] for r in stages[1:]] == [*STAGES, "total"]
    shown = [float(r[1]) for r in stages[1:-1]]  # each rounded to 0.1 s, as is the total
    assert float(stages[-1][1]) == pytest.approx(sum(shown), abs=0.05 * (len(shown) + 1))
    assert "href='packages/demo-mlp-v1'" in page  # paths are links from the report's folder


def test_a_weight_branch_that_is_not_there_stops_the_demo_before_the_search(
    tmp_path: Path,
) -> None:
    sample = write_sample(tmp_path / "data", 2000, files_per_class=1)
    files = [str(p) for p in (*sample.signal, *sample.background)]
    result = subprocess.run(
        [sys.executable, "-m", "batchml.cli", "demo", "--workdir", str(tmp_path / "w"),
         "--data", *files, "--weight", "xsec_weight", "--trials", "1"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "no branch 'xsec_weight'" in result.stderr and "signal_000.root" in result.stderr
    assert "hyper-parameter search" not in result.stdout
    assert "Traceback" not in result.stderr


def _rows(page: str, caption: str) -> list[list[str]]:
    """The cells of the table under the heading that starts with ``caption``, header first."""
    found = re.search(rf"<h3>{re.escape(caption)}[^<]*</h3><table>(.*?)</table>", page)
    assert found, f"no table {caption!r} in the report"
    rows = re.findall(r"<tr>(.*?)</tr>", found[1])
    cells = [re.findall(r"<t[hd]>(.*?)</t[hd]>", row) for row in rows]
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in row] for row in cells]


@pytest.mark.chromium
def test_demo_report_shows_every_plot_and_link_in_a_browser(demo: Demo) -> None:
    page = demo.work / "report.html"
    seen = render(page)
    assert len(seen.images) == page.read_text().count("<img ")
    assert len(seen.images) >= 6
    broken = [i for i, image in enumerate(seen.images) if not (image.complete and image.width > 0)]
    assert not broken, f"images {broken} of {page} did not load in Chromium: {seen.images}"
    local = [urlparse(link) for link in seen.links if link.startswith("file:")]
    assert len(local) >= 10  # the input files and every product
    missing = [u.geturl() for u in local if not Path(unquote(u.path)).exists()]
    assert not missing, f"links of {page} to files that are not there: {missing}"

    shot = demo.work / "report.png"  # kept beside the report, to look at
    screenshot(page, shot, seen.height)
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (seen.height, WIDTH)
    assert pixels.std() > 0.05  # a page, not a blank


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in the output:\n{text}"
    return float(found[1])
