"""Searches on the embedded default: slots, budget, pruning, and the kinds of failure."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from batchml.hpo import run_study
from batchml.hpo.outcomes import OUTCOME_ATTR
from tests.unit import hpo_objectives as objectives


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")


def test_forty_trials_on_four_slots_never_share_a_device() -> None:
    study = run_study(
        objectives.quadratic, n_trials=40, site="local", gpus_per_trial=1, trials_per_job=2,
        max_jobs=2, study_name="slots", progress=False,
        sampler=optuna.samplers.RandomSampler(seed=1),
    )  # fmt: skip
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 40
    devices = [t.user_attrs["seen_devices"] for t in trials]
    assert all(d in {"0", "1", "2", "3"} for d in devices)
    assert [t.user_attrs["batchml.devices"] for t in trials] == devices
    for a in trials:
        for b in trials:
            overlap = (
                a.user_attrs["t_start"] < b.user_attrs["t_end"]
                and b.user_attrs["t_start"] < a.user_attrs["t_end"]
            )
            if a.number < b.number and overlap:
                assert a.user_attrs["seen_devices"] != b.user_attrs["seen_devices"]
    assert study.best_value == min(t.value for t in trials)


def test_journal_lives_on_the_driver_and_a_rerun_resumes(tmp_path: Path) -> None:
    kwargs = dict(site="local", study_name="resume", progress=False, max_jobs=1)
    run_study(objectives.quadratic, n_trials=3, **kwargs)
    journal = tmp_path / "home" / ".local" / "share" / "batchml" / "studies" / "resume.journal"
    assert journal.is_file()
    study = run_study(objectives.quadratic, n_trials=5, **kwargs)
    assert len(study.trials) == 5  # 3 kept, 2 more


def test_median_pruner_prunes_across_processes() -> None:
    study = run_study(
        objectives.learning_curve, n_trials=12, site="local", study_name="prune", progress=False,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
        sampler=optuna.samplers.RandomSampler(seed=3), max_jobs=1,
    )  # fmt: skip
    states = [t.state for t in study.trials]
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states
    assert len(states) == 12


@pytest.mark.parametrize(
    ("objective", "kind"), [(objectives.raises, "raised"), (objectives.crashes, "crashed")]
)
def test_failing_objectives_fail_once_and_are_not_retried(objective: object, kind: str) -> None:
    study = run_study(objective, n_trials=2, site="local", study_name=kind, progress=False)  # type: ignore[arg-type]
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert {t.user_attrs[OUTCOME_ATTR] for t in study.trials} == {kind}
    if kind == "raised":
        assert "ValueError: bad objective" in study.trials[0].user_attrs["batchml.reason"]
