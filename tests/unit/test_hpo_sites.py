"""One search over two local sites: placement on both, the site of each trial, one site failing."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from batchml.hpo import run_study
from batchml.hpo.outcome import OUTCOME_ATTR, RETRY_OF_ATTR, SITE_ATTR, SITES_ATTR, has_ended
from tests.unit import hpo_objectives as objectives


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.fixture
def other_site(tmp_path: Path) -> Path:
    """A second local site, by its file: its own cluster, scheduler and workers."""
    path = tmp_path / "other.yaml"
    path.write_text("scheduler: local\nnetwork: {dashboard: false}\n")
    return path


def test_trials_land_on_both_sites_and_record_theirs(other_site: Path) -> None:
    study = run_study(
        objectives.slow_square, n_trials=16, max_jobs=1, trials_per_job=2, study_name="two",
        sites={"local": {}, str(other_site): {"trials_per_job": 1}}, progress=False,
        sampler=optuna.samplers.RandomSampler(seed=2),
    )  # fmt: skip
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 16 == len(study.trials)
    sites = [t.user_attrs[SITE_ATTR] for t in trials]
    assert set(sites) == {"local", "other"}
    # at most 2 trials at once on local (one job of 2) and 1 on other: local runs more
    assert sites.count("local") > sites.count("other") > 0
    assert study.user_attrs[SITES_ATTR]["other"]["down"] is None


def test_a_site_that_dies_mid_study_has_its_trials_retried_on_the_other(
    other_site: Path, tmp_path: Path
) -> None:
    objective = objectives.KillsItsSiteOnce("other", str(tmp_path / "killed"))
    study = run_study(
        objective, n_trials=20, max_jobs=1, trials_per_job=2, study_name="dies",
        sites={"local": {}, str(other_site): {"worker_patience_s": 1}}, progress=False,
    )  # fmt: skip
    ended = [t for t in study.trials if has_ended(t)]
    assert len(ended) == 20 and all(t.state == TrialState.COMPLETE for t in ended)
    lost = [t for t in study.trials if t.user_attrs.get(OUTCOME_ATTR) == "preempted"]
    assert lost, "the trial that killed its site was not recorded as preempted"
    started = [t for t in lost if t.params]  # the others were queued on the site, not begun
    assert started
    for first in started:
        retry = next(t for t in study.trials if t.user_attrs.get(RETRY_OF_ATTR) == first.number)
        assert retry.params == first.params
        assert retry.intermediate_values[0] == first.intermediate_values[0]
        assert retry.user_attrs[SITE_ATTR] == "local"
    down = study.user_attrs[SITES_ATTR]["other"]
    assert down["down"] and down["retry_at"] is not None
