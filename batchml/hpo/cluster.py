"""The dask cluster a search runs on: worker jobs started on a site, or the caller's client.

batchml's own cluster is sized for the search: each worker job holds the GPUs
of ``trials_per_job`` trials, a thread per trial, and declares that many
``TRIAL`` slots (so a job near its walltime can stop taking trials, see
walltime.py). It is started and closed with the search; a caller's client is
used as it is and left running.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dask
from distributed import Client
from distributed.deploy import SpecCluster

from batchml.config.site_schema import Paths
from batchml.errors import InvalidValue
from batchml.hpo import gpu_share
from batchml.hpo.gpu_memory import parse_gpu_memory
from batchml.hpo.spec import Where
from batchml.hpo.walltime import TRIAL_RESOURCE

if TYPE_CHECKING:
    from batchml.config.resources import Resources
    from batchml.config.site_schema import Site

# A task whose worker died comes back to the driver at once (to be recorded as preempted
# and retried as a new trial) rather than being rerun by dask under the same trial; and
# worker processes must not be daemonic, or they cannot start a process per trial.
TRIAL_DASK_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.worker.daemon": False,
}


@dataclass(frozen=True)
class SearchCluster:
    """The client trials are sent through, and what the search knows of its workers."""

    client: Client
    cluster: SpecCluster | None  # batchml's own; None with the caller's client
    site: str  # the name trials see (TrialContext.site)
    paths: Paths  # the site's folders (defaults with the caller's client)


@contextlib.contextmanager
def connect(where: Where) -> Iterator[SearchCluster]:
    """The caller's client as it is, or a cluster started on ``where.site`` (closed after)."""
    if where.client is not None:
        yield SearchCluster(where.client, None, where.site or "given-client", Paths())
        return
    from batchml.backends import backend_for

    site, resources = _request(where)
    pools: dict[str, float] = {TRIAL_RESOURCE: where.trials_per_job}
    if where.gpus_per_trial:  # in GPUs, whatever unit the job asked its GPUs in
        pools["GPU"] = gpu_share.job_gpus(where.gpus_per_trial, where.trials_per_job)
    with (
        dask.config.set(TRIAL_DASK_CONFIG),
        backend_for(site).cluster(resources, jobs=where.max_jobs, worker_resources=pools) as pool,
        Client(pool) as client,
    ):
        yield SearchCluster(client, pool, site.name, site.paths)


def check_request(where: Where) -> None:
    """Raise now what starting the cluster would raise (a bad site, too many workers for the
    GPUs, a share of a GPU that is no 1/k), before a study journal is made."""
    own_jobs = where.trials_per_job if where.client is None else None
    gpu_share.check_request(where.gpus_per_trial, own_jobs)
    try:
        parse_gpu_memory(where.gpu_memory_per_trial, where.gpus_per_trial)
    except InvalidValue as bad:
        raise InvalidValue(f"gpu_memory_per_trial: {bad.message}", hint=bad.hint) from None
    if where.client is None:
        from batchml.backends import backend_for

        site, resources = _request(where)
        backend_for(site).check_cluster(resources, where.max_jobs)


def _request(where: Where) -> tuple[Site, Resources]:
    """The site and what each of its worker jobs asks for (the GPUs of its trials, or the
    site's shards or MIG slices for them)."""
    from batchml.config.resources import Resources
    from batchml.config.site_lookup import load_site

    site = load_site(where.site).site
    per_job = where.trials_per_job
    cores = max(site.defaults.cores, per_job)  # one thread per concurrent trial
    gpus, unit = gpu_share.job_request(where.gpus_per_trial, per_job, site.slurm)
    request = {**where.resources, "gpus": gpus, "gpu_unit": unit, "cores": cores}
    return site, Resources.from_site(site, **request)


def declares_trial_slots(client: Client) -> bool:
    """Whether a caller's workers declare TRIAL slots (then they can drain near a walltime)."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return bool(workers) and all(TRIAL_RESOURCE in w.get("resources", {}) for w in workers)
