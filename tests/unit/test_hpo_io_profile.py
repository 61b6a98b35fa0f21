"""Each trial's reading in the study: written by the trial process as it reports (so a killed
trial keeps it), read back for the report and `hpo status`, I/O-bound trials flagged with
what would help them."""

from __future__ import annotations

import functools
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from batchml.data.loader_stats import LoaderStats
from batchml.demo.sample import write_sample
from batchml.hpo import run_study
from batchml.hpo.io_profile import IO_BOUND_FRACTION, IoProfile, status_lines
from batchml.hpo.outcome import IO_ATTR, OUTCOME_ATTR
from batchml.hpo.page import Figure, TableData
from batchml.hpo.report import reading_blocks
from tests.unit import hpo_objectives as objectives

SERVER = "root://eos.example.org:1094"


def profile(wait: float, origin: str = SERVER, **numbers: float) -> IoProfile:
    """Ten seconds of a trial that waited ``wait`` seconds for 100 MB from ``origin``."""
    stats = LoaderStats(wait_s=wait, consume_s=10.0 - wait, bytes_read=1e8, events_read=1e6,
                        batches=1000, bytes_from={origin: 1e8}, **numbers)  # fmt: skip
    return IoProfile(10.0, stats)


def study_of(*profiles: IoProfile | None) -> optuna.Study:
    study = optuna.create_study()
    for found in profiles:
        attrs = {IO_ATTR: found.to_attr()} if found else {}
        study.add_trial(create_trial(value=1.0, user_attrs=attrs))
    return study


def test_a_profile_survives_the_trip_through_the_study_and_stays_small() -> None:
    written = profile(3.0, cache_hits=2, cache_copies=4, read_s=1.23456789)
    (trial,) = study_of(written).trials
    read = IoProfile.of(trial)
    assert read is not None and read.stats.read_s == 1.235  # four significant digits
    assert (read.wait_fraction, read.mb_per_s, read.events_per_s) == (0.3, 10.0, 1e5)
    assert read.stats.bytes_from == {SERVER: 1e8} and read.cache() == "2 hits, 4 copies"
    assert read.sources() == f"{SERVER} 100 MB"
    assert len(str(trial.user_attrs[IO_ATTR])) < 400
    other = create_trial(value=1.0, user_attrs={IO_ATTR: {"format": 99}})
    assert IoProfile.of(other) is None  # written by a batchml this one cannot read


def test_only_a_trial_waiting_longer_than_the_threshold_is_io_bound_with_advice() -> None:
    assert IO_BOUND_FRACTION == 0.2
    assert not profile(2.0).io_bound and profile(2.0).advice() == []
    remote = profile(2.1).advice()
    assert profile(2.1).io_bound and len(remote) == 3
    assert "cache_dir" in remote[0] and "decompression_threads" in remote[1]
    assert SERVER in remote[2] and "redirector" in remote[2]
    cached = profile(5.0, origin="cache", cache_copies=4).advice()
    assert len(cached) == 1 and "reading threads" in cached[0]  # no server, cache in use
    (local,) = profile(5.0, origin="local").advice()
    assert "reading threads" in local


def test_status_names_the_io_bound_trials_and_nothing_without_profiles() -> None:
    assert status_lines(study_of(None, None).trials) == []
    summary, bound = status_lines(study_of(profile(1.0), profile(6.0), None).trials)
    assert summary.startswith("data: 2 trial(s) measured; median 35 % of a trial's time waiting")
    assert bound.startswith("I/O-bound (waiting > 20 % of the trial's time): trial 1 (60 %);")
    many = status_lines(study_of(*[profile(6.0)] * 10).trials)[1]
    assert "trial 7 (60 %) and 2 more" in many


def test_the_report_flags_exactly_the_io_bound_trials_and_groups_their_advice() -> None:
    study = study_of(profile(1.0, origin="local"), profile(6.0), profile(9.0), None)
    blocks = reading_blocks(study)
    (table,) = [b for b in blocks if isinstance(b, TableData)]
    assert [row[0] for row in table.rows] == ["0", "1", "2"]  # trial 3 recorded nothing
    assert [row[-1] for row in table.rows] == ["", "I/O-bound", "I/O-bound"]
    assert table.rows[1][2:5] == ("60 %", "10.0", "100,000")
    (advice,) = [b for b in blocks if isinstance(b, str) and b.startswith("I/O-bound")]
    assert advice.startswith("I/O-bound: trial(s) 1, 2. What would help: cache_dir")
    assert isinstance(blocks[-1], Figure) and blocks[-1].png.startswith(b"\x89PNG")
    assert reading_blocks(study_of(None)) == []


def test_a_loop_torch_workers_fed_is_shown_as_not_timed() -> None:
    untimed = IoProfile(10.0, LoaderStats(bytes_read=1e6, events_read=1e4, batches=10))
    blocks = reading_blocks(study_of(untimed))
    (table,) = [b for b in blocks if isinstance(b, TableData)]
    assert table.rows[0][2] == "not timed"
    assert any(isinstance(b, str) and "dataset.loader(num_workers=N)" in b for b in blocks)


def test_a_trial_killed_after_its_report_keeps_what_it_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    sample = write_sample(tmp_path / "sample", 2000, files_per_class=1)
    files = [str(f) for f in (*sample.signal, *sample.background)]
    objective = functools.partial(objectives.reads_then_is_killed_once, files=files)
    study = run_study(objective, n_trials=1, site="local", study_name="killed-io",
                      progress=False)  # fmt: skip
    killed, retry = study.trials
    assert killed.state == TrialState.FAIL and killed.user_attrs[OUTCOME_ATTR] == "preempted"
    assert retry.state == TrialState.COMPLETE
    for trial in (killed, retry):
        read = IoProfile.of(trial)
        assert read is not None and read.stats.events_read == 2000
        assert set(read.stats.bytes_from) == {"local"} and read.stats.batches > 0
        assert 0 < read.stats.wait_s < read.elapsed_s
