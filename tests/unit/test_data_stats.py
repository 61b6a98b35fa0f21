"""Streaming feature statistics agree with numpy on the whole array and survive JSON."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from batchml.data import FeatureStats


def test_streamed_statistics_match_numpy_and_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    data = np.column_stack([rng.normal(1e3, 5.0, 10_000), rng.exponential(2.0, 10_000)]).astype(
        np.float32
    )
    batches = [SimpleNamespace(features=data[i : i + 333]) for i in range(0, 10_000, 333)]
    stats = FeatureStats.scan(batches, ["ht", "met"])

    assert stats.count == 10_000
    np.testing.assert_allclose(stats.mean, data.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, data.astype(np.float64).std(axis=0), rtol=1e-9)
    np.testing.assert_array_equal(stats.min, data.min(axis=0))
    np.testing.assert_array_equal(stats.max, data.max(axis=0))

    stats.save(tmp_path / "norm.json")
    loaded = FeatureStats.load(tmp_path / "norm.json")
    assert loaded.columns == ("ht", "met") and loaded.count == 10_000
    np.testing.assert_allclose(loaded.std, stats.std)
    assert loaded.to_dict() == stats.to_dict()


def test_a_sample_stops_at_max_events() -> None:
    batches = [SimpleNamespace(features=np.full((100, 1), float(i))) for i in range(10)]
    stats = FeatureStats.scan(batches, ["x"], max_events=250)
    assert stats.count == 250 and stats.max[0] == 2.0
