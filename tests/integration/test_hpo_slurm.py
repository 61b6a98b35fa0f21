"""Searches on the real Slurm: trials as tasks on GPU worker jobs, a worker job cancelled,
and the driver stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
from batchml.hpo.outcome import OUTCOME_ATTR, RETRY_OF_ATTR
from tests.unit import hpo_objectives as objectives
from tests.unit import mps_stand_in
from tests.unit.hpo_checks import most_at_once, slot_clashes
from tests.unit.hpo_watch import SLOW_OBJECTIVE, stop_mid_search

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


def test_trials_sharing_gpus_through_shards_see_one_device_and_at_most_k_on_it(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    shared, shards = slurm_env["BATCHML_SLURM_SHARED"], slurm_env["BATCHML_SLURM_SHARDS_PER_GPU"]
    site = tmp_path / "shards.yaml"
    site.write_text(
        "scheduler: slurm\n"
        "defaults: {cores: 1, memory: 600MB, walltime: 15m}\n"
        f"slurm: {{partition: {slurm_env['BATCHML_SLURM_PARTITION']}, gpu_share: shard, "
        f"shards_per_gpu: {shards}}}\n"
        "network: {interface: lo}\n"
        f"paths: {{log_dir: {shared}/logs, shared_dir: {shared}}}\n"
    )
    study = run_study(
        objectives.quadratic_for_a_second, n_trials=12, site=str(site), gpus_per_trial=0.5,
        trials_per_job=2, max_jobs=2, study_name="slurm-shards",
        storage=str(tmp_path / "s.journal"), progress=False,
    )  # fmt: skip
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 12
    for trial in trials:  # one device each, the one its slot named
        assert trial.user_attrs["seen_devices"] == trial.user_attrs["batchml.devices"]
        assert len(trial.user_attrs["seen_devices"].split(",")) == 1
    jobs = {t.user_attrs["job"] for t in trials}
    for job in jobs:  # each worker job held shards of a GPU, not a whole one
        shown = subprocess.run(
            ["scontrol", "show", "job", job], capture_output=True, text=True, check=True
        ).stdout
        assert f"TresPerNode=gres:shard:{shards}" in shown and "gres:gpu" not in shown
    # Slurm numbers the node's GPUs the same for every job: count per device across jobs.
    on_device = {t.number: {**t.user_attrs, "job": "any"} for t in trials}
    peaks = most_at_once(on_device)
    assert max(peaks.values()) == 2  # never more than k = 2 on a device
    assert sum(peak == 2 for peak in peaks.values()) >= 2  # two devices both reached k


def test_worker_jobs_of_an_mps_site_run_their_own_daemon_and_quit_it_when_cancelled(
    slurm_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sbatch passes the driver's environment on: the jobs find the stand-in first on PATH.
    monkeypatch.setenv("PATH", f"{mps_stand_in.install(tmp_path)}:{os.environ['PATH']}")
    monkeypatch.setenv("MPS_RECORD", str(tmp_path / "record"))
    shared = slurm_env["BATCHML_SLURM_SHARED"]
    site = tmp_path / "mps.yaml"
    site.write_text(
        "scheduler: slurm\nmps: true\n"
        "defaults: {cores: 1, memory: 600MB, walltime: 15m}\n"
        f"slurm: {{partition: {slurm_env['BATCHML_SLURM_PARTITION']}}}\n"
        "network: {interface: lo}\n"
        f"paths: {{log_dir: {shared}/logs, shared_dir: {shared}, scratch_dir: {tmp_path}}}\n"
    )
    study = run_study(
        objectives.records_mps, n_trials=2, site=str(site), gpus_per_trial=1, max_jobs=1,
        study_name="slurm-mps", storage=str(tmp_path / "s.journal"), progress=False,
    )  # fmt: skip
    # The search over, its worker job is cancelled (SIGTERM to its processes): the job's
    # shell quits the daemon on its way out.
    deadline = time.monotonic() + 60
    while len(_mps_calls(tmp_path)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    start, stop = _mps_calls(tmp_path)
    assert (start["args"], stop["args"], stop["stdin"]) == ("-d", "", "quit")
    pipe = start["pipe"].split()[0]
    assert start["pipe"].split()[1] == start["folder"] == "700"
    assert Path(pipe).parent.parent == tmp_path  # in the job's scratch
    assert {t.user_attrs["mps_pipe"] for t in study.trials} == {pipe}  # every trial sees it
    assert not Path(pipe).exists()  # removed with the job


def _mps_calls(tmp_path: Path) -> list[dict[str, str]]:
    record = tmp_path / "record"
    return mps_stand_in.calls(record) if record.exists() else []


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


def test_ctrl_c_leaves_no_worker_job_of_the_study_in_the_queue(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    logs, shared = tmp_path / "logs", tmp_path / "shared"
    shared.mkdir()
    (tmp_path / "site.yaml").write_text(
        "scheduler: slurm\n"
        "defaults: {cores: 1, memory: 600MB, walltime: 15m}\n"
        f"slurm: {{partition: {slurm_env['BATCHML_SLURM_PARTITION']}}}\n"
        "network: {interface: lo}\n"
        f"paths: {{log_dir: {logs}, shared_dir: {shared}}}\n"
    )
    (tmp_path / "objective.py").write_text(SLOW_OBJECTIVE)
    journal = tmp_path / "ctrl-c.journal"
    (tmp_path / "study.yaml").write_text(
        "study_name: slurm-ctrl-c\nobjective: objective.py:objective\n"
        f"site: {tmp_path / 'site.yaml'}\nn_trials: 40\nmax_jobs: 2\nstorage: {journal}\n"
    )
    run = stop_mid_search(
        [sys.executable, "-m", "batchml.cli", "hpo", "run", str(tmp_path / "study.yaml")],
        {**os.environ, "HOME": str(tmp_path / "home")}, journal, "slurm-ctrl-c",
        while_running=lambda: _see_jobs(logs),
    )  # fmt: skip
    err = run.stderr
    assert run.returncode == 130, err
    assert "resume with: batchml hpo resume slurm-ctrl-c" in err
    assert _jobs_logging_to(logs, alive=True) == []
    assert len(_jobs_logging_to(logs, alive=False)) >= 2
    # the workers' TLS files are gone; their private folder (batchml-dask-tls-<uid>) stays
    assert [p for p in shared.rglob("*") if not p.is_dir()] == []


def _see_jobs(logs: Path) -> None:
    """Fail unless the worker jobs are found by their logs (else finding none proves nothing)."""
    assert len(_jobs_logging_to(logs, alive=True)) >= 2


def _jobs_logging_to(folder: Path, *, alive: bool) -> list[int]:
    """Ids of the jobs squeue lists whose output goes to ``folder``, queued or running or not."""
    queued = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED"}
    jobs = json.loads(subprocess.run(
        ["squeue", "--json"], capture_output=True, text=True, check=True
    ).stdout)["jobs"]  # fmt: skip
    found = []
    for job in jobs:
        states = job["job_state"] if isinstance(job["job_state"], list) else [job["job_state"]]
        if job["standard_output"].startswith(f"{folder}/") and alive == bool(queued & set(states)):
            found.append(int(job["job_id"]))
    return found


def test_a_site_whose_jobs_are_refused_is_set_aside_and_the_others_finish(
    site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    bad = Path(site).read_text().replace("{partition: ", "{partition: nope-", 1)
    Path(site).write_text(bad)
    study = run_study(
        objectives.slow_square, n_trials=6, max_jobs=1, study_name="slurm-refused-site",
        storage=str(tmp_path / "r.journal"), progress=False, sites={"local": {}, site: {}},
    )  # fmt: skip
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6
    assert {t.user_attrs["batchml.site"] for t in study.trials} == {"local"}
    refused = study.user_attrs["batchml.sites"]["hpo-slurm"]
    assert "refused a worker job" in refused["down"] and "partition" in refused["down"]
