"""Model cards and the browsable registry: what they show, how they escape, what they rewrite."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from batchml.registry import Registry
from batchml.registry.pages import to_markdown, write_site
from batchml.registry.pages.card import model_card
from tests.unit.browser import render

HOSTILE = "<script>alert(1)</script> [click](http://evil.example) *loud* | pipe"


def registry_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchml.cli", "--no-color", "registry", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _package(folder: Path) -> Path:
    """A folder with a package's validation report and latency table (as package build writes)."""
    folder.mkdir()
    report = {"model": {"passed": True, "max_abs": 2.5e-7, "tolerance": {"rule": "|d| <= 1e-5"}}}
    (folder / "validation.json").write_text(json.dumps(report))
    (folder / "benchmark.csv").write_text(
        "intra_op_threads,batch,p50_ms,p90_ms,p99_ms,rows_per_s,session_create_ms,"
        "first_inference_ms,peak_rss_mb\n1,1,0.031,0.04,0.05,32000.0,3.1,0.2,80.5\n"
    )
    return folder


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "registry")
    example = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    stats = {"format_version": 1, "count": 5000,
             "features": {"pt": {"mean": 40.0, "std": 12.0, "min": 20.0, "max": 300.0},
                          "eta": {"mean": 0.0, "std": 1.2, "min": -2.5, "max": 2.5}}}  # fmt: skip
    registry.publish(
        "jets", b"one", metrics={"loss": 0.5}, tags=["first"], description="the first try"
    )
    version = registry.publish(
        "jets",
        b"two",
        input_example=example,
        input_names=["features"],
        variables={"features": ["pt", "eta"]},
        preprocessing=stats,
        metrics={"objective": 0.25, "auc": 0.91},
        params={"lr": 0.001, "layers": 3},
        lineage={
            "hpo_study": "jets-search",
            "hpo_trial": 17,
            "hpo_run": {
                "host": "gpu-node-7",
                "devices": ["GPU 2"],
                "attempt": 1,
                "trials_in_study": 40,
            },
            "data": [{"url": "root://eos.example//jets.root", "size": 123456, "sha256": "ab" * 32}],
            "site": "lxplus",
        },
        description=HOSTILE,
        aliases=["production"],
    )
    registry.attach(version, "onnx-package", _package(registry.root.parent / "package"))
    registry.publish("taus", b"tau")
    return registry


def test_card_shows_inputs_data_choice_metrics_and_package(registry: Registry) -> None:
    registry.annotate("jets/2", intended_use="jet tagging in the barrel")
    version = registry.get("jets@production")
    text = to_markdown(model_card(version, ["production"], hashed=True))
    assert "Intended use: jet tagging in the barrel" in text
    assert "| features | pt | 40 | 12 | 20 | 300 |" in text  # the variable and its normalisation
    assert "statistics of 5,000 training events" in text
    assert "| root://eos.example//jets.root | 123456 | " + "ab" * 32 + " |" in text
    assert "| **study** | jets-search |" in text and "| **trial** | 17 |" in text
    assert "| **trained on** | gpu-node-7 |" in text
    assert "| auc | 0.91 |" in text and "| lr | 0.001 |" in text
    assert "| **model: passed** | max \\|onnx - torch\\| 2.5e-07" in text
    assert "| 1 | 1 | 0.031 | 0.04 | 0.05 | 32000 |" in text  # the latency table
    assert (
        "Not written yet: add it with 'batchml registry annotate jets/2 --limitations TEXT'" in text
    )
    assert "every file hashed against the manifest" in text


def test_card_escapes_what_other_users_wrote(registry: Registry, tmp_path: Path) -> None:
    shown = registry_cli(registry.root, "card", "jets@production")
    assert shown.returncode == 0, shown.stderr
    assert "<script>" not in shown.stdout and "[click]" not in shown.stdout
    assert "\\<script\\>alert" in shown.stdout  # a Markdown renderer shows it as text
    page = tmp_path / "card.html"
    written = registry_cli(registry.root, "card", "jets@production", "-o", str(page))
    assert written.returncode == 0, written.stderr
    html = page.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "<link" not in html and "src=" not in html  # self-contained: nothing fetched


def test_card_to_a_bad_suffix_exits_2_and_writes_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    result = registry_cli(registry.root, "card", "jets/2", "-o", str(tmp_path / "card.pdf"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "a card is written as .md or .html, not '.pdf'" in result.stderr
    assert not (tmp_path / "card.pdf").exists()


def test_annotate_fills_the_open_fields(registry: Registry) -> None:
    result = registry_cli(registry.root, "annotate", "jets/1", "--limitations", "barrel only",
                          "--tag", "retired")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "limitations: barrel only" in result.stdout and "tags: retired" in result.stdout
    notes = registry.get("jets/1").annotations
    assert notes == {
        "description": "the first try",
        "tags": ["retired"],
        "limitations": "barrel only",
    }


def test_pages_are_rewritten_only_where_something_changed(
    registry: Registry, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    first = write_site(registry, out)
    assert (first.written, first.unchanged, first.removed) == (6, 0, 0)  # index, 2 models, 3 cards
    assert write_site(registry, out).written == 0
    registry.annotate("jets/1", description="a better description")
    after_note = write_site(registry, out)
    assert after_note.written == 2  # its card and the model's list of versions
    assert "a better description" in (out / "models/jets/versions/1.html").read_text()
    registry.alias("jets", "production", 1)
    assert write_site(registry, out).written == 4  # the two cards it names, model page, index
    registry.publish("jets", b"three")
    assert write_site(registry, out).written == 3  # the new card, the model page, the index
    registry.alias("jets", "production", 3)
    registry.gc(keep=0)  # removes jets/1 and jets/2 (3 is aliased), taus/1
    gone = write_site(registry, out)
    assert gone.removed == 3
    assert not (out / "models/jets/versions/1.html").exists()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html")) == [
        "index.html", "models/jets/index.html", "models/jets/versions/3.html",
        "models/taus/index.html",
    ]  # fmt: skip


def test_pages_refuse_a_folder_they_did_not_write(registry: Registry, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    command = ["registry", "html", str(registry.root), "-o", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "batchml.cli", *command],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "holds no .batchml-site.json" in result.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.chromium
def test_every_page_loads_and_every_link_resolves_in_chromium(
    registry: Registry, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    result = registry_cli(registry.root, "html", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert re.search(r"6 pages in .*: 6 written, 0 unchanged, 0 removed", result.stdout)
    pages = sorted(out.rglob("*.html"))
    assert len(pages) == 6
    followed = 0
    for page in pages:
        seen = render(page)  # fails unless the page's load event fired
        assert seen.height > 100, f"{page} rendered empty"
        for link in seen.links:
            parts = urlparse(link)
            assert parts.scheme == "file", f"{page} links outside the pages: {link}"
            target = Path(unquote(parts.path))
            assert target.is_file() and target.is_relative_to(out), f"{page}: broken link {link}"
            followed += 1
    assert followed >= 15  # index -> models and latest versions; models -> versions; cards -> up
