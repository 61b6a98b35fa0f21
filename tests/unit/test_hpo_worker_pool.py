"""The worker pool: trials dask would hold unrunnable are found, and a cluster without the
GPUs a trial needs is refused at once."""

from __future__ import annotations

import os
import signal
import time

import dask
import pytest
from distributed import Client, LocalCluster
from optuna.storages import InMemoryStorage

from batchml.backends.base import SchedulerError
from batchml.hpo import run_study
from batchml.hpo.cluster import TRIAL_DASK_CONFIG
from batchml.hpo.worker_pool import WorkerPool


def test_a_trial_sent_to_a_worker_that_died_is_found_and_runs_when_sent_again() -> None:
    with (
        dask.config.set(TRIAL_DASK_CONFIG),
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        pool = WorkerPool(client, cluster, patience_s=60.0)
        pool.check()
        [dead] = pool.slots
        os.kill(client.run(os.getpid)[dead], signal.SIGKILL)  # its nanny starts a new one
        while dead in client.scheduler_info()["workers"]:  # the scheduler saw it go
            time.sleep(0.01)
        # sent before the driver saw it go: dask holds it unrunnable, even once a worker is back
        future = client.submit(sum, [1, 2], workers=[dead], allow_other_workers=True, pure=False)
        client.wait_for_workers(1, timeout=60)
        while dead in pool.slots or not any(pool.slots.values()):  # until it takes tasks
            time.sleep(0.05)
            pool.check()
        assert list(pool.slots.values()) == [1]  # one thread, no GPU, no TRIAL slots
        assert pool.stranded({future: dead}) == [future]
        client.cancel(future)
        again = client.submit(sum, [1, 2], workers=list(pool.slots), allow_other_workers=True)
        assert again.result(timeout=30) == 3
        assert pool.stranded({again: next(iter(pool.slots))}) == []


def test_a_cluster_without_the_gpus_a_trial_needs_is_refused_at_once() -> None:
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(1)
        with pytest.raises(SchedulerError, match=r"needs 1 GPU\(s\) and no dask worker"):
            run_study(
                lambda trial, ctx: 0.0, n_trials=2, client=client, gpus_per_trial=1,
                study_name="no-gpus", storage=InMemoryStorage(), progress=False,
            )  # fmt: skip
