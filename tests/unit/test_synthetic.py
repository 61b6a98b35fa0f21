"""The demo's ROOT sample: real TTrees, the promised physics, and safe re-runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import uproot

from batchml.demo.sample import FLAT_FEATURES, JAGGED_FEATURES, write_sample


def test_sample_is_ttrees_with_separating_physics(tmp_path: Path) -> None:
    counted: list[int] = []
    sample = write_sample(
        tmp_path, events=4000, files_per_class=2, chunk=700, progress=counted.append
    )
    assert sum(counted) == 4000 and len(sample.signal) == len(sample.background) == 2
    with uproot.open(sample.signal[0]) as f:
        tree = f[sample.tree]
        assert isinstance(tree, uproot.TTree) and tree.num_entries == 1000
        assert set(FLAT_FEATURES) | set(JAGGED_FEATURES) | {"label", "weight"} <= set(tree.keys())
        sig = tree.arrays(["mbb", "label", "njet", "jet_pt"], library="ak")
    with uproot.open(sample.background[0]) as f:
        bkg = f[sample.tree].arrays(["mbb", "label"], library="np")
    assert set(np.asarray(sig["label"])) == {1} and set(bkg["label"]) == {0}
    assert abs(float(np.mean(sig["mbb"])) - 125.0) < 3.0  # the Higgs peak
    assert float(np.mean(bkg["mbb"])) < 110.0
    assert np.array_equal(np.asarray(sig["njet"]), [len(j) for j in sig["jet_pt"].tolist()])


def test_rerun_reuses_complete_files_and_is_deterministic(tmp_path: Path) -> None:
    first = write_sample(tmp_path / "a", events=800, files_per_class=1, seed=7)
    again = write_sample(tmp_path / "b", events=800, files_per_class=1, seed=7)
    read = lambda p: uproot.open(p)["events"]["mbb"].array(library="np")  # noqa: E731
    assert np.array_equal(read(first.signal[0]), read(again.signal[0]))
    mtime = first.signal[0].stat().st_mtime_ns
    write_sample(tmp_path / "a", events=800, files_per_class=1, seed=7)
    assert first.signal[0].stat().st_mtime_ns == mtime
    assert not list((tmp_path / "a").glob(".*partial"))
