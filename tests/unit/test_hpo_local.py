"""Searches on the embedded default: slots, budget, pruning, and the kinds of failure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from batchml.hpo import Search, Where, run, run_study
from batchml.hpo.outcome import OUTCOME_ATTR
from tests.unit import hpo_objectives as objectives
from tests.unit.hpo_checks import most_at_once, slot_clashes


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
    assert slot_clashes({t.number: t.user_attrs for t in trials}) == []
    assert study.best_value == min(t.value for t in trials)


def test_trials_sharing_two_gpus_see_one_device_each_and_at_most_k_per_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    study = run_study(
        objectives.quadratic_for_a_second, n_trials=12, site="local", gpus_per_trial=0.5,
        trials_per_job=4, max_jobs=1, study_name="shared", progress=False,
    )  # fmt: skip
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 12
    assert all(t.user_attrs["seen_devices"] in {"0", "1"} for t in trials)  # one device each
    assert [t.user_attrs["batchml.devices"] for t in trials] == [
        t.user_attrs["seen_devices"] for t in trials
    ]
    peaks = most_at_once({t.number: t.user_attrs for t in trials})
    assert sorted(peaks.values()) == [2, 2]  # both devices reached k = 2, neither went past it


def test_journal_lives_on_the_driver_and_a_rerun_resumes(tmp_path: Path) -> None:
    run_study(objectives.quadratic, n_trials=3, site="local", study_name="resume",
              progress=False, max_jobs=1)  # fmt: skip
    journal = tmp_path / "home" / ".local" / "share" / "batchml" / "studies" / "resume.journal"
    assert journal.is_file()
    # the same search as typed values: run_study's keywords are their fields
    search = Search(objectives.quadratic, n_trials=5, study_name="resume")
    study = run(search, Where(site="local", max_jobs=1), progress=False)
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


def test_killed_worker_is_preempted_and_retried_with_same_params() -> None:
    study = run_study(
        objectives.kills_its_worker_once, n_trials=4, site="local", study_name="preempt",
        progress=False, max_jobs=1,
    )  # fmt: skip
    first = study.trials[1]
    assert first.state == TrialState.FAIL and first.user_attrs[OUTCOME_ATTR] == "preempted"
    retry = next(t for t in study.trials if t.user_attrs.get("batchml.retry_of") == 1)
    assert retry.state == TrialState.COMPLETE and retry.params == first.params
    assert retry.user_attrs["batchml.attempt"] == 2
    assert retry.intermediate_values[0] == first.intermediate_values[0]
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 4


def test_driver_killed_half_way_then_resumed(tmp_path: Path) -> None:
    journal = tmp_path / "killed.journal"
    driver = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.hpo_driver", "12", str(journal)],
        cwd=Path(__file__).resolve().parents[2], start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    try:
        deadline = time.monotonic() + 120
        while _completed(storage) < 4:
            assert time.monotonic() < deadline and driver.poll() is None, "driver made no progress"
            time.sleep(0.1)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = {
        t.number: (t.params, t.value) for t in _trials(storage) if t.state == TrialState.COMPLETE
    }
    study = run_study(objectives.slow_square, n_trials=12, site="local", max_jobs=1,
                      study_name="killed", storage=str(journal), progress=False)  # fmt: skip
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 12
    assert {t.number: (t.params, t.value) for t in complete if t.number in before} == before
    orphans = [t for t in study.trials if t.user_attrs.get(OUTCOME_ATTR) == "orphaned"]
    assert all(t.state == TrialState.FAIL for t in orphans)


def _trials(storage: optuna.storages.BaseStorage) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name="killed", storage=storage).trials
    except KeyError:
        return []


def _completed(storage: optuna.storages.BaseStorage) -> int:
    return sum(t.state == TrialState.COMPLETE for t in _trials(storage))


def test_a_cluster_without_workers_stops_with_a_clear_error() -> None:
    from distributed import Client, LocalCluster

    from batchml.backends import SchedulerError

    with (
        LocalCluster(n_workers=0, processes=False) as cluster,
        Client(cluster) as client,
        pytest.raises(SchedulerError, match="no dask worker has been connected for 1 s"),
    ):
        run_study(objectives.quadratic, n_trials=1, client=client, study_name="empty",
                      progress=False, worker_patience_s=1.0)  # fmt: skip


def test_a_trial_killed_from_outside_is_retried() -> None:
    study = run_study(objectives.terminated_once, n_trials=2, site="local", study_name="term",
                      progress=False)  # fmt: skip
    outcomes = [t.user_attrs.get(OUTCOME_ATTR) for t in study.trials]
    assert outcomes.count("preempted") == 2
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2 and all(t.user_attrs["batchml.attempt"] == 2 for t in complete)


def test_publish_best_records_the_study_in_the_version(tmp_path: Path) -> None:
    import torch

    from batchml.hpo import publish_best
    from batchml.registry import Registry

    study = run_study(objectives.quadratic, n_trials=3, site="local", study_name="pub",
                      progress=False)  # fmt: skip
    version = publish_best(study, tmp_path / "registry", "quad", torch.nn.Linear(2, 1),
                           input_example=torch.zeros(2, 2).numpy())  # fmt: skip
    again = Registry(tmp_path / "registry").get("quad@production")
    assert again.uri == version.uri
    assert again.metrics["objective"] == study.best_value
    assert again.params == study.best_params
    assert (
        again.lineage["hpo_study"] == "pub"
        and again.lineage["hpo_trial"] == study.best_trial.number
    )
    assert again.lineage["hpo_run"]["host"] == study.best_trial.user_attrs["batchml.host"]


def test_hpo_report_draws_every_plot_and_the_slot_timeline(tmp_path: Path) -> None:
    import base64
    import re

    study = run_study(objectives.learning_curve, n_trials=6, site="local", study_name="rep",
                      progress=False, max_jobs=2)  # fmt: skip
    output = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, "-m", "batchml.cli", "hpo", "report", "rep", "-o", str(output)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    page = output.read_text()
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert (
        len(images) >= 5
    )  # history, intermediate values, parallel coordinates, timeline, durations
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "one row per CPU slot" in page and "Best parameters" in page
    assert {t.user_attrs["batchml.slot"] for t in study.trials} == {0}  # one trial per worker


def test_a_worker_near_its_walltime_takes_no_trial_it_cannot_finish() -> None:
    import dask
    from distributed import Client

    from batchml.backends import backend_for
    from batchml.backends.base import JOB_END_ENV
    from batchml.config.resources import Resources
    from batchml.config.site_lookup import load_site
    from batchml.hpo.cluster import TRIAL_DASK_CONFIG

    def end_job_at(when: float) -> None:
        os.environ[JOB_END_ENV] = str(when)

    backend = backend_for(load_site("local").site)
    with (
        dask.config.set(TRIAL_DASK_CONFIG),
        backend.cluster(Resources(cores=2), jobs=2, worker_resources={"TRIAL": 2}) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2)
        doomed = sorted(client.scheduler_info()["workers"])[0]
        kwargs = dict(client=client, study_name="walltime", progress=False)
        run_study(objectives.one_second, n_trials=4, **kwargs)  # how long trials take
        end = time.time() + 3.5
        client.run(end_job_at, end, workers=[doomed])
        # 18 more trials on 4 slots: about 4.7 s, past the doomed worker's end
        study = run_study(objectives.one_second, n_trials=22, **kwargs)
    assert len(study.trials) == 22  # a trial given back is the same trial, not a new one
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert study.user_attrs["batchml.workers_drained"] == 1
    on_doomed = [t for t in study.trials if t.user_attrs["batchml.worker"] == doomed]
    assert on_doomed, "the worker with a walltime ran no trial at all"
    late = [(t.number, t.datetime_complete.timestamp() - end) for t in on_doomed]
    assert all(t.datetime_complete.timestamp() <= end for t in on_doomed), late
    assert max(t.datetime_complete.timestamp() for t in study.trials) > end  # others went on
