"""Runs inside the HTCondor pool (see tests/integration/pool.py): one study over three sites.

Usage: ``sites_pool_driver.py RUN_DIR SLURM_CONF PARTITION``. The sites are the
pool's Slurm (tests/services/pool-slurm.sh), the pool itself and the local
machine, whose workers all run this driver's Python. Once a trial has completed
on a Slurm job and another runs on one, every Slurm job of this study is
cancelled with scancel; the report lists every trial and what was cancelled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import hpo_objectives as objectives
import optuna
from hpo_pool_driver import _yaml, pool_site, rows
from optuna.trial import TrialState

from batchml.config.site_schema import JobDefaults, Network, Site, SlurmSettings
from batchml.hpo import run_study

N_TRIALS = 24
STUDY = "sites"


def slurm_site(source: Path, partition: str) -> Site:
    return Site(
        name="pool-slurm",
        scheduler="slurm",
        defaults=JobDefaults(cores=1, memory="600MB", walltime="15m"),
        slurm=SlurmSettings(partition=partition),
        network=Network(interface="lo"),
        environment={"variables": {"PYTHONPATH": str(source)}},  # workers import this batchml
        paths={"log_dir": str(source.parent / "slurm-logs"), "shared_dir": str(source.parent)},
    )


def study_slurm_jobs(run_dir: Path) -> list[str]:
    """This study's Slurm jobs: batchml's worker jobs submitted from this driver's RUN_DIR."""
    listing = subprocess.run(
        ["squeue", "--noheader", "--me", "--name=batchml-worker", "--format=%i %Z"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [job for job, _, folder in (line.partition(" ") for line in listing.splitlines())
            if folder == str(run_dir)]  # fmt: skip


def cancel_slurm_jobs_mid_study(journal: str, run_dir: Path, done: dict[str, list]) -> None:
    """scancel every Slurm job of the study once one has completed a trial and one runs one."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name=STUDY, storage=storage).trials
        except KeyError:
            trials = []
        jobs = study_slurm_jobs(run_dir)
        on_slurm = [t for t in trials if t.user_attrs.get("job") in jobs]
        running = [t.number for t in on_slurm if t.state == TrialState.RUNNING]
        if running and any(t.state == TrialState.COMPLETE for t in on_slurm):
            subprocess.run(["scancel", *jobs], check=True, capture_output=True)
            done.update(cancelled=jobs, running=running)
            return
        time.sleep(0.5)


def main(run_dir: Path, slurm_conf: str, partition: str) -> None:
    os.environ["SLURM_CONF"] = slurm_conf  # the pool's wrapper starts this with a clean environment
    source = run_dir / "src"
    on_gpus = {"max_jobs": 2, "gpus_per_trial": 1}
    sites = {
        str(_yaml(slurm_site(source, partition), run_dir, "pool-slurm")): on_gpus,
        str(_yaml(pool_site(source), run_dir, "pool-htcondor")): on_gpus,
        "local": {"max_jobs": 1},
    }
    journal = str(run_dir / "sites.journal")
    done: dict[str, list] = {}
    watcher = threading.Thread(  # a daemon: a failed study ends the driver at once
        target=cancel_slurm_jobs_mid_study, args=(journal, run_dir, done), daemon=True
    )
    watcher.start()
    study = run_study(
        objectives.quadratic_for_a_second, n_trials=N_TRIALS, sites=sites, study_name=STUDY,
        storage=journal, progress=False,
        # A trial lost with the cancelled jobs may be sent to the same site again before
        # the site is set aside and be lost a second time; each loss counts against
        # max_retries (the default, 1, would then fail it for good).
        max_retries=3,
    )  # fmt: skip
    watcher.join()
    report = {"trials": rows(study), "n_trials": N_TRIALS, "sites": list(sites), **done}
    (run_dir / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    import pool_log  # copied beside this file by run_in_pool

    pool_log.info_to_stderr()
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
