"""One search over two local sites: placement on both, the site of each trial, one site failing."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from batchml.backends.base import SchedulerError
from batchml.cli import main
from batchml.errors import ConfigError, InvalidValue
from batchml.hpo import run_study
from batchml.hpo.outcome import OUTCOME_ATTR, RETRY_OF_ATTR, SITE_ATTR, SITES_ATTR, has_ended
from batchml.hpo.page import TableData
from batchml.hpo.report import study_report
from batchml.hpo.sites import Backoff
from batchml.hpo.timeline import ran, slot_rows
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


def test_trials_land_on_both_sites_and_record_theirs(
    other_site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = run_study(
        objectives.slow_square, n_trials=16, max_jobs=1, trials_per_job=2, study_name="two",
        sites={"local": {}, str(other_site): {"trials_per_job": 1}}, progress=False,
        sampler=optuna.samplers.RandomSampler(seed=2),
    )  # fmt: skip
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 16 == len(study.trials)
    sites = [t.user_attrs[SITE_ATTR] for t in trials]
    assert set(sites) == {"local", "other"}
    assert sites.count("local") > 0 and sites.count("other") > 0
    assert study.user_attrs[SITES_ATTR]["other"]["down"] is None
    # hpo status: a row per site with its trials and the slots they used
    capsys.readouterr()
    assert main(["--no-color", "hpo", "status", "two"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()
            if line.split()[:1] in (["local"], ["other"])}  # fmt: skip
    assert rows["local"][1:6] == [str(sites.count("local")), str(sites.count("local")), "0", "0",
                                  "2"]  # fmt: skip
    assert rows["other"][1:6] == [str(sites.count("other")), str(sites.count("other")), "0", "0",
                                  "1"]  # fmt: skip
    assert rows["other"][6:8] == ["up,", "1"]
    # the report: the same table, and timeline rows that say their site first
    tables = [b for s in study_report(study).sections for b in s.blocks
              if isinstance(b, TableData) and "by site" in b.caption]  # fmt: skip
    assert [row[:2] for row in tables[0].rows] == [
        ("local", str(sites.count("local"))), ("other", str(sites.count("other")))
    ]  # fmt: skip
    labels = set(slot_rows(ran(study)).values())
    assert {label.split(" · ")[0] for label in labels} == {"local", "other"}
    assert len(labels) == 3  # two slots on local, one on other


def test_a_site_that_dies_mid_study_has_its_trials_retried_on_the_other(
    other_site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    objective = objectives.KillsItsSiteOnce(("other",), str(tmp_path / "killed"))
    study = run_study(
        objective, n_trials=20, max_jobs=1, trials_per_job=2, study_name="dies", max_retries=3,
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
        while retry.state != TrialState.COMPLETE:  # lost on the dying site before it began
            retry = next(t for t in study.trials if t.user_attrs.get(RETRY_OF_ATTR) == retry.number)
        assert retry.params == first.params
        assert retry.intermediate_values[0] == first.intermediate_values[0]
        assert retry.user_attrs[SITE_ATTR] == "local"
    down = study.user_attrs[SITES_ATTR]["other"]
    assert "no dask worker has been connected" in down["down"] and down["retry_at"] is not None
    capsys.readouterr()
    assert main(["--no-color", "hpo", "status", "dies"]) == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("other")]
    assert "down, retry in" in row and "no dask worker" in row


def test_the_study_stops_when_every_site_is_down(other_site: Path, tmp_path: Path) -> None:
    objective = objectives.KillsItsSiteOnce(("local", "other"), str(tmp_path / "killed"))
    with pytest.raises(SchedulerError, match="no site can run trials") as raised:
        run_study(
            objective, n_trials=20, max_jobs=1, study_name="all-down", progress=False,
            worker_patience_s=1, sites={"local": {}, str(other_site): {}},
        )  # fmt: skip
    said = str(raised.value)
    assert "local: no dask worker" in said and "other: no dask worker" in said


def test_the_study_file_takes_the_same_sites(
    other_site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study_file = tmp_path / "study.yaml"
    study_file.write_text(
        "study_name: filed\nobjective: tests.unit.hpo_objectives:slow_square\nn_trials: 6\n"
        f"sites:\n  local: {{max_jobs: 1}}\n  {other_site}: {{max_jobs: 1}}\n"
    )
    assert main(["--no-color", "hpo", "run", str(study_file)]) == 0
    capsys.readouterr()
    assert main(["--no-color", "hpo", "status", "filed"]) == 0
    said = capsys.readouterr().out
    assert "ended 6 of 6" in said
    assert {line.split()[0] for line in said.splitlines() if "up," in line} <= {"local", "other"}


def _journals(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "home").rglob("*.journal"))


@pytest.mark.parametrize(
    ("keywords", "says"),
    [
        ({"site": "local", "sites": {"local": {}}}, "site= and sites= are both given"),
        ({"sites": {}}, "names no site"),
        ({"sites": {"local": {"max_jobs": 0}}}, "sites.local.max_jobs: 0 is out of range"),
        ({"sites": {"local": {"max_job": 2}}}, "did you mean 'max_jobs'?"),
        ({"sites": {"local": {"walltime": "soon"}}}, "sites.local.walltime: 'soon' is not a"),
        ({"sites": {"local": {"gpus_per_trial": 0.3}}}, "sites.local.gpus_per_trial: 0.3"),
        ({"sites": {"nosuch": {}}}, "sites.nosuch: no site named 'nosuch'"),
        ({"sites": {"./nowhere/x.yaml": {}}}, "sites['./nowhere/x.yaml']: "),
        ({"sites": {"local": []}}, "sites.local: [] has the wrong type"),
    ],
)
def test_bad_sites_are_named_by_field_and_nothing_is_made(
    keywords: dict[str, object], says: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as raised:
        run_study(objectives.quadratic, n_trials=1, study_name="bad", progress=False,
                  **keywords)  # type: ignore[arg-type]  # fmt: skip
    assert says in str(raised.value) and raised.value.exit_code == 2
    assert _journals(tmp_path) == []


def test_a_site_named_twice_is_refused(other_site: Path, tmp_path: Path) -> None:
    twin = tmp_path / "twin" / "other.yaml"
    twin.parent.mkdir()
    twin.write_text(other_site.read_text())
    with pytest.raises(ConfigError, match="is site 'other', as"):
        run_study(objectives.quadratic, n_trials=1, progress=False,
                  sites={str(other_site): {}, str(twin): {}})  # fmt: skip


def test_several_sites_refuse_an_in_memory_storage(other_site: Path) -> None:
    with pytest.raises(InvalidValue, match="cannot serve several sites"):
        run_study(objectives.quadratic, n_trials=1, progress=False,
                  storage=optuna.storages.InMemoryStorage(),
                  sites={"local": {}, str(other_site): {}})  # fmt: skip


def test_a_failed_site_waits_twice_as_long_each_time_up_to_a_limit() -> None:
    backoff = Backoff(first_s=60, longest_s=300)
    waits = []
    for _ in range(5):
        backoff.fail("no worker", now=1000.0)
        assert backoff.down and not backoff.due(1000.0)
        assert backoff.retry_at is not None
        waits.append(backoff.retry_at - 1000.0)
        assert backoff.due(backoff.retry_at)
        backoff.retried()
        assert not backoff.down
    assert waits == [60, 120, 240, 300, 300]
    backoff.fail("jobs refused", now=0.0)
    assert backoff.describe("hpc", now=0.0) == "hpc: down, retry in 5 min"
    backoff.retried()
    backoff.recovered()  # it ran trials again: the next failure waits the first wait
    backoff.fail("again", now=0.0)
    assert backoff.describe("hpc", now=30.0) == "hpc: down, retry in 30 s"
