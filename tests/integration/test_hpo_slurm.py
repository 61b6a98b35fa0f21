"""Searches on the real Slurm: trials as tasks on GPU worker jobs, and a worker job cancelled."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import cloudpickle
import optuna
import pytest
from optuna.trial import TrialState

from batchml.backends.base import SchedulerError
from batchml.hpo import run_study
from batchml.hpo.command import CommandObjective
from batchml.hpo.outcomes import OUTCOME_ATTR, RETRY_OF_ATTR
from tests.unit import hpo_objectives as objectives
from tests.unit.hpo_checks import slot_clashes

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]
cloudpickle.register_pickle_by_value(objectives)  # workers need not import the tests package


@pytest.fixture
def site(slurm_env: dict[str, str], tmp_path: Path) -> str:
    shared = slurm_env["BATCHML_SLURM_SHARED"]
    path = tmp_path / "hpo-slurm.yaml"
    path.write_text(
        "scheduler: slurm\n"
        "defaults: {cores: 1, memory: 600MB, walltime: 15m}\n"
        f"slurm: {{partition: {slurm_env['BATCHML_SLURM_PARTITION']}}}\n"
        "network: {interface: lo}\n"
        f"paths: {{log_dir: {shared}/logs, shared_dir: {shared}}}\n"
    )
    return str(path)


def test_sixteen_trials_on_two_jobs_of_two_gpus(site: str, tmp_path: Path) -> None:
    study = run_study(
        objectives.quadratic, n_trials=16, site=site, gpus_per_trial=1, trials_per_job=2,
        max_jobs=2, study_name="slurm-slots", storage=str(tmp_path / "s.journal"), progress=False,
    )  # fmt: skip
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 16
    jobs = {t.user_attrs["job"] for t in trials}
    assert len(jobs) == 2 and "" not in jobs  # both worker jobs ran trials
    for trial in trials:
        assert trial.user_attrs["seen_devices"] == trial.user_attrs["batchml.devices"]
        assert len(trial.user_attrs["seen_devices"].split(",")) == 1
    assert slot_clashes({t.number: t.user_attrs for t in trials}) == []


def test_cancelled_worker_job_is_preempted_and_retried(site: str, tmp_path: Path) -> None:
    journal = str(tmp_path / "p.journal")
    result: dict[str, optuna.Study] = {}

    def drive() -> None:
        result["study"] = run_study(
            objectives.waits_on_first_attempt, n_trials=30, site=site, max_jobs=2,
            study_name="slurm-preempt", storage=journal, progress=False,
        )  # fmt: skip

    driver = threading.Thread(target=drive)
    driver.start()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    job = ""
    deadline = time.monotonic() + 120
    while not job:
        assert time.monotonic() < deadline, "trial 1 never started on a worker"
        try:
            trials = optuna.load_study(study_name="slurm-preempt", storage=storage).trials
        except KeyError:
            trials = []
        job = trials[1].user_attrs.get("job", "") if len(trials) > 1 else ""
        time.sleep(0.2)
    subprocess.run(["scancel", job], check=True)
    driver.join(timeout=240)
    assert not driver.is_alive(), "the study did not finish after its worker job was cancelled"
    study = result["study"]
    first = study.trials[1]
    assert first.state == TrialState.FAIL and first.user_attrs[OUTCOME_ATTR] == "preempted"
    retry = next(t for t in study.trials if t.user_attrs.get(RETRY_OF_ATTR) == 1)
    assert retry.state == TrialState.COMPLETE and retry.params == first.params
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 30
    assert study.user_attrs["batchml.jobs_replaced"] >= 1  # a new job for the cancelled one


def test_a_refused_worker_job_stops_the_search_at_once(site: str, tmp_path: Path) -> None:
    bad = Path(site).read_text().replace("{partition: ", "{partition: nope-", 1)
    Path(site).write_text(bad)
    with pytest.raises(SchedulerError, match=r"refused a worker job: .*partition") as caught:
        run_study(
            objectives.quadratic, n_trials=2, site=site, max_jobs=1, study_name="slurm-refused",
            storage=str(tmp_path / "r.journal"), progress=False, worker_patience_s=3600,
        )  # fmt: skip
    assert "site show" in (caught.value.hint or "")


def test_a_worker_job_drains_before_its_walltime_and_is_replaced(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    shared = slurm_env["BATCHML_SLURM_SHARED"]
    site = tmp_path / "hpo-slurm-1m.yaml"
    site.write_text(
        "scheduler: slurm\n"
        "defaults: {cores: 1, memory: 600MB, walltime: 1m}\n"
        f"slurm: {{partition: {slurm_env['BATCHML_SLURM_PARTITION']}}}\n"
        "network: {interface: lo}\n"
        f"paths: {{log_dir: {shared}/logs, shared_dir: {shared}}}\n"
    )
    study = run_study(
        objectives.eight_seconds, n_trials=10, site=str(site), max_jobs=1,
        study_name="slurm-walltime", storage=str(tmp_path / "w.journal"), progress=False,
    )  # fmt: skip
    assert len(study.trials) == 10  # no trial was lost to the walltime and retried
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert study.user_attrs["batchml.workers_drained"] >= 1
    assert study.user_attrs["batchml.jobs_replaced"] >= 1
    assert len({t.user_attrs["job"] for t in study.trials}) >= 2


def test_two_gpu_command_trials_run_under_torchrun_in_worker_jobs(
    site: str, tmp_path: Path
) -> None:
    scripts = Path(__file__).parents[1] / "unit" / "commands"
    study = run_study(
        CommandObjective("ranks.py", {}, base=scripts), {}, n_trials=2, site=site,
        gpus_per_trial=2, max_jobs=2, study_name="slurm-torchrun", progress=False,
        storage=str(tmp_path / "t.journal"),
    )  # fmt: skip
    assert [t.value for t in study.trials] == [22.0, 22.0]  # world size 2, two GPUs each
    assert all(len(t.user_attrs["batchml.devices"].split(",")) == 2 for t in study.trials)
