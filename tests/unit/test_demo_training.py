"""The demo's split, counted: every event is in exactly one part, as read_part reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import uproot

from batchml.demo.sample import FLAT_FEATURES, write_sample
from batchml.demo.training import DataSpec, count_events, read_part


def test_event_counts_per_class_match_the_parts_read_and_the_files(tmp_path: Path) -> None:
    sample = write_sample(tmp_path, 6000, files_per_class=2)
    files = tuple(str(p) for p in (*sample.signal, *sample.background))
    data = DataSpec(files, "events", FLAT_FEATURES, "label", str(tmp_path / "stats.json"),
                    weight="weight")  # fmt: skip
    counts = count_events(data)
    for part, counted in (("validation", counts.validation), ("test", counts.test)):
        events = read_part(data, part)
        assert counted == (int((events.target > 0.5).sum()), int((events.target < 0.5).sum()))
        assert np.all((events.weight > 0.03) & (events.weight < 1.3))  # the sample's, not ones
    labels = np.concatenate([uproot.open(f)["events"]["label"].array(library="np")
                             for f in files])  # fmt: skip
    in_files = (int((labels == 1).sum()), int((labels == 0).sum()))
    parts = (counts.training, counts.validation, counts.test)
    assert tuple(sum(part[i] for part in parts) for i in (0, 1)) == in_files == (3000, 3000)
    assert 0.75 < sum(counts.training) / 6000 < 0.85  # the training fraction, 0.8
