"""The workers of a search as its driver sees them: their trial slots, and jobs kept alive.

dask-jobqueue does not resubmit a job that was cancelled, preempted or hit its
walltime; without the pool a study would slowly lose its workers. It also stops
a search that cannot go on (no worker for too long, a worker job the batch
system refused, no worker with the GPUs a trial needs), retires the workers that
stopped taking trials near their walltime, and finds the trials dask would hold
unrunnable for good.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from distributed import Client, Future
from distributed.deploy import SpecCluster

from batchml._compat import distributed as dask_inside

# It sets a SIGINT handler (undone there): imported with batchml.hpo, on the main thread.
from batchml._compat.dask_jobqueue import JobQueueCluster
from batchml.backends.base import SchedulerError
from batchml.hpo.walltime import TRIAL_RESOURCE


class WorkerPool:
    """Keeps the worker jobs alive: replaces those that ended, and notices when none are left.

    A job counts as ended once its worker, seen before, has been gone for
    ``replace_after_s`` (a restarting worker comes back sooner). Only jobs of a
    batchml cluster (``cluster``, a dask-jobqueue one) are replaced: local
    clusters restart their own workers, and a caller's client is the caller's.
    """

    def __init__(
        self,
        client: Client,
        cluster: SpecCluster | None,
        patience_s: float,
        gpus_per_trial: float = 0,
        replace_after_s: float = 10.0,
    ) -> None:
        self.client = client
        self.gpus_per_trial = gpus_per_trial
        self.slots: dict[str, int] = {}  # trial slots of each connected worker
        self.cluster = cluster if isinstance(cluster, JobQueueCluster) else None
        self.patience_s = patience_s
        self.replace_after_s = replace_after_s
        self.seen: set[str] = set()
        self.missing_since: dict[str, float] = {}
        self.replaced = 0
        self.drained = 0
        self.retiring: set[str] = set()
        self.since = time.monotonic()

    def check(self) -> int:
        """The number of workers now; SchedulerError once there were none for too long,
        or at once when the scheduler refused a worker job."""
        if self.cluster is not None:
            from batchml._compat.dask_jobqueue import drop_refused

            refused = drop_refused(self.cluster)
            if refused:
                raise SchedulerError(
                    f"the batch system refused a worker job: {refused[0]}",
                    hint="fix the site file (`batchml site show SITE` says where each value "
                    "comes from); `batchml submit --dry-run` shows the submit file",
                )
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        self.slots = {address: self._slots(w) for address, w in workers.items()}
        self._check_gpus(workers)
        names = {str(w.get("name")) for w in workers.values()}
        self._retire_drained(workers)
        now = time.monotonic()
        if names:
            self.since = now
        elif now - self.since > self.patience_s:
            raise SchedulerError(
                f"no dask worker has been connected for {self.patience_s:.0f} s",
                hint="look at the worker jobs (`batchml jobs`) and their logs: "
                "queued too long, held, or dying at start",
            )
        if self.cluster is not None:
            self._replace_ended(names, now)
        return len(names)

    def _check_gpus(self, workers: Mapping[str, Any]) -> None:
        """SchedulerError when no connected worker has the GPUs one trial needs."""
        gpus = {a: w.get("resources", {}).get("GPU", 0) for a, w in workers.items()}
        if self.gpus_per_trial and gpus and max(gpus.values()) < self.gpus_per_trial:
            raise SchedulerError(
                f"a trial needs {self.gpus_per_trial} GPU(s) and no dask worker has that many: "
                f"their GPU resources are {sorted(set(gpus.values()))}",
                hint="start workers with `--resources GPU=N` (batchml's own clusters do), "
                "or lower gpus_per_trial",
            )

    def _slots(self, worker: Mapping[str, Any]) -> int:
        """Trials the worker runs at once: its TRIAL slots, else its GPUs or threads."""
        resources = worker.get("resources", {})
        if worker.get("status", "running") != "running":
            return 0
        if TRIAL_RESOURCE in resources:
            return int(resources[TRIAL_RESOURCE])
        if self.gpus_per_trial:
            return int(resources.get("GPU", 0) / self.gpus_per_trial)  # exact: see gpu_share.py
        return int(worker.get("nthreads", 1))

    def stranded(self, where: Mapping[Future, str]) -> list[Future]:
        """Trials sent to a worker that left or stopped taking trials, which dask holds unrunnable.

        dask runs such a trial on another worker (``allow_other_workers``), but one
        whose worker left while no other was connected stays unrunnable for good,
        even once workers come back: it must be sent again.
        """
        lost = [f.key for f, worker in where.items() if not self.slots.get(worker)]
        if not lost or not any(self.slots.values()):  # nowhere to send them yet
            return []
        unrunnable = set(dask_inside.unrunnable(self.client, lost))
        return [f for f in where if f.key in unrunnable]

    def _retire_drained(self, workers: Mapping[str, Any]) -> None:
        """Retire workers that stopped taking trials (walltime) once they run none.

        Their jobs then end and are replaced (or, where jobs are not replaced, at
        least free the batch slot); the trials queued on them go to other workers.
        """
        idle = [
            address
            for address, w in workers.items()
            if w.get("resources", {}).get(TRIAL_RESOURCE) == 0
            and not dask_inside.executing(w)
            and w.get("status") == "running"  # not retiring already
        ]
        if idle:
            self.drained += len(set(idle) - self.retiring)
            self.retiring.update(idle)
            # Refused while it still holds a result nobody gathered yet: tried again next time.
            self.client.retire_workers(idle, close_workers=True)

    def _replace_ended(self, names: set[str], now: float) -> None:
        assert self.cluster is not None
        self.seen |= names
        for name in list(self.cluster.worker_spec):
            if name in names or name not in self.seen:
                self.missing_since.pop(name, None)
                continue
            if now - self.missing_since.setdefault(name, now) > self.replace_after_s:
                del self.missing_since[name]
                self._replace(name)

    def _replace(self, name: str) -> None:
        """Submit a new job under a new name, and cancel the ended one (it may be requeued).

        The new name is drawn while the ended one is still taken: dask-jobqueue would
        otherwise give the new job the ended job's name, and until it connected it
        would look ended (seen before, now absent) and be replaced again, and dask's
        lost-worker handler would cancel it if it connected later than its
        lost-worker timeout after the ended job left: both happen to a job that
        waits in a busy queue.
        """
        assert self.cluster is not None
        dask_inside.replace_worker(self.cluster, name)
        self.replaced += 1
