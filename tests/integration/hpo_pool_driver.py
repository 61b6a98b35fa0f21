"""Runs inside the HTCondor pool (see tests/integration/pool.py): two studies, then a report.

1. 16 trials on 2 worker jobs of 2 simulated GPUs each (1 GPU per trial).
2. A study on one worker job whose trial 1 waits until this driver removes that
   job with condor_rm: the trial must be recorded as preempted, and the job
   replaced for the retry and the other trials to run. The replacement connects
   20 s after it is submitted, as a job queued on a busy site would: later than
   both the driver's replace_after_s and dask's lost-worker-timeout (15 s).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cloudpickle
import hpo_objectives as objectives
import optuna

from batchml.config.site_schema import HTCondorSettings, JobDefaults, Network, Site
from batchml.hpo import run_study

cloudpickle.register_pickle_by_value(objectives)  # worker jobs do not have this file


def pool_site(source: Path, setup: tuple[str, ...] = ()) -> Site:
    return Site(
        name="hpo-pool",
        scheduler="htcondor",
        defaults=JobDefaults(cores=1, memory="1GB", disk="1GB", walltime="20m"),
        htcondor=HTCondorSettings(job_flavour="espresso"),
        network=Network(interface="lo", worker_ports="40000-40100"),
        environment={
            "variables": {"PYTHONPATH": str(source)},  # workers import this batchml
            "setup_commands": setup,
        },
        paths={"log_dir": str(source.parent / "logs")},
    )


def rows(study: optuna.Study) -> list[dict[str, Any]]:
    keep = ("job", "seen_devices", "batchml.devices", "t_start", "t_end", "batchml.outcome",
            "batchml.retry_of", "batchml.site")  # fmt: skip
    return [
        {"number": t.number, "state": t.state.name, "params": t.params,
         "attrs": {k: t.user_attrs[k] for k in keep if k in t.user_attrs}}
        for t in study.trials
    ]  # fmt: skip


def remove_job_of_trial_one(journal: str, slow_start: Path, done: dict[str, str]) -> None:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name="preempt", storage=storage).trials
        except KeyError:
            trials = []
        job = trials[1].user_attrs.get("job", "") if len(trials) > 1 else ""
        if job:
            slow_start.touch()  # before the removal: only the replacement job waits
            subprocess.run(["condor_rm", job], check=True, capture_output=True)
            done["removed"] = job
            return
        time.sleep(0.2)


def two_connected_jobs_study(site: str, run_dir: Path) -> optuna.Study:
    """16 trials once both 2-GPU worker jobs are connected (a fast job could do them all)."""
    from distributed import Client

    from batchml.backends import backend_for
    from batchml.config.resources import Resources
    from batchml.config.site_lookup import load_site

    resolved = load_site(site).site
    resources = Resources.from_site(resolved, gpus=2, cores=2)
    with backend_for(resolved).cluster(resources, jobs=2) as cluster, Client(cluster) as client:
        deadline = time.monotonic() + 120
        while len(client.scheduler_info(n_workers=-1)["workers"]) < 2:
            assert time.monotonic() < deadline, "two worker jobs did not connect in 120 s"
            time.sleep(0.2)
        return run_study(
            objectives.quadratic, n_trials=16, client=client, gpus_per_trial=1,
            trials_per_job=2, max_jobs=2, study_name="slots",
            storage=str(run_dir / "slots.journal"), progress=False,
        )  # fmt: skip


def main(run_dir: Path) -> None:
    site = str(_yaml(pool_site(run_dir / "src"), run_dir, "hpo-pool"))
    report: dict[str, Any] = {}
    report["slots"] = rows(two_connected_jobs_study(site, run_dir))
    slow_start = run_dir / "slow-start"
    slow_site = pool_site(run_dir / "src", (f"if [ -e {slow_start} ]; then sleep 20; fi",))
    journal = str(run_dir / "preempt.journal")
    removed: dict[str, str] = {}
    watcher = threading.Thread(target=remove_job_of_trial_one, args=(journal, slow_start, removed))
    watcher.start()
    preempt = run_study(
        objectives.waits_on_first_attempt, n_trials=8, site=str(_yaml(slow_site, run_dir, "slow")),
        max_jobs=1, study_name="preempt", storage=journal, progress=False,
    )  # fmt: skip
    watcher.join()
    report["preempt"] = rows(preempt)
    report["removed"] = removed.get("removed", "")
    report["jobs_replaced"] = preempt.user_attrs.get("batchml.jobs_replaced", 0)
    (run_dir / "report.json").write_text(json.dumps(report))


def _yaml(site: Site, run_dir: Path, name: str) -> Path:
    """The site as a file, as a user would write it (YAML is a superset of JSON)."""
    path = run_dir / f"{name}.yaml"
    path.write_text(json.dumps(site.model_dump(mode="json", exclude={"name"})))
    return path


if __name__ == "__main__":
    import pool_log  # copied beside this file by run_in_pool

    pool_log.info_to_stderr()
    main(Path(sys.argv[1]))
