"""`batchml data inspect|bench` on local files: what they print, and a bad branch named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batchml.cli import main
from batchml.demo.sample import write_sample
from tests.unit.nano_files import nano_events, write_nano


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> str:
    sample = write_sample(tmp_path_factory.mktemp("sample"), 2000, files_per_class=1)
    return str(Path(sample.signal[0]).parent / "*.root")


def test_inspect_lists_trees_branches_entries_and_sizes(
    files: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "inspect", files]) == 0
    out = capsys.readouterr().out
    assert out.count("events (TTree): 1000 entries") == 2
    assert "ht" in out and "float" in out and "compressed" in out


def test_bench_reads_every_event_through_the_pipeline(
    files: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "bench", files, "--features", "ht", "mbb", "--batch-size", "100"]) == 0
    out = capsys.readouterr().out
    assert "2,000 events in" in out and "events/s" in out and "MB/s" in out


def test_bench_names_a_missing_branch_and_fails(
    files: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "bench", files, "--features", "ht", "nope"]) != 0
    err = capsys.readouterr().err
    assert "nope" in err and "hint:" in err


def test_bench_takes_jagged_cut_and_target_as_its_hint_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = nano_events(500)
    path = str(write_nano(tmp_path / "nano.root", events))
    command = ["data", "bench", path, "--tree", "Events", "--features", "HT"]
    assert main([*command, "Jet_pt"]) == 2
    assert "hint: give its length: jagged={'Jet_pt': 10} (--jagged Jet_pt=10)" in (
        capsys.readouterr().err
    )
    options = ["--jagged", "Jet_pt=3", "--cut", "not nMuon", "--target", "flag"]
    assert main([*command, *options, "--batch-size", "64"]) == 0
    kept = int(np.sum(events["nMuon"] == 0))  # type: ignore[operator]
    assert f", {kept} kept in " in capsys.readouterr().out
