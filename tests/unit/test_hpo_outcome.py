"""Outcomes as studies store them: a study written by an earlier batchml reads the same.

The study below is written with plain Optuna, attribute by attribute, as batchml
has always stored them (``batchml.outcome`` = 'preempted', ...): the budget and
`batchml hpo status` must read it as they read a study of this version.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState, create_trial

from batchml.cli import main
from batchml.hpo.outcome import FAILURES, Outcome, has_ended

SPACE = {"x": FloatDistribution(0.0, 1.0)}


def _stored(state: TrialState, **attrs: object) -> optuna.trial.FrozenTrial:
    value = 1.0 if state == TrialState.COMPLETE else None
    return create_trial(state=state, value=value, params={"x": 0.5}, distributions=SPACE,
                        user_attrs={f"batchml.{k}": v for k, v in attrs.items()})  # fmt: skip


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "old.journal"
    study = optuna.create_study(
        study_name="old", storage=JournalStorage(JournalFileBackend(str(path)))
    )
    study.set_user_attr("batchml.config", {"n_trials": 6})
    for trial in (
        _stored(TrialState.COMPLETE),
        _stored(TrialState.FAIL, outcome="preempted", retried=True),
        _stored(TrialState.COMPLETE, retry_of=1, attempt=2),
        _stored(TrialState.FAIL, outcome="raised", reason="ValueError: bad"),
        _stored(TrialState.FAIL, outcome="crashed"),
        _stored(TrialState.FAIL, outcome="orphaned", retried=True),
        _stored(TrialState.FAIL, outcome="interrupted", retried=True),
        _stored(TrialState.PRUNED),
        _stored(TrialState.FAIL, outcome="oom_while_sharing", retried=True),  # since issue 20
    ):
        study.add_trial(trial)
    return path


def test_the_budget_counts_each_trial_once_and_skips_retried_attempts(journal: Path) -> None:
    storage = JournalStorage(JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name="old", storage=storage).trials
    ended = [True, False, True, True, True, False, False, True, False]
    assert [has_ended(t) for t in trials] == ended
    stored = [
        Outcome(t.user_attrs["batchml.outcome"]) for t in trials if t.state == TrialState.FAIL
    ]
    assert [o.retried for o in stored] == [True, False, False, True, True, True]


def test_status_lists_every_kind_of_failure(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hpo", "status", "old", "--storage", str(journal)]) == 0
    lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    for kind in FAILURES:
        assert f"of which {kind.value} 1" in lines, lines
    assert "fail 6" in lines and "ended 5 of 6" in lines
