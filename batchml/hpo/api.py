"""run_study and run: a hyper-parameter search whose trials are dask tasks on batch GPU workers.

A search ends in one of three ways. It runs until ``n_trials`` trials have
ended. A driver that dies leaves RUNNING trials behind; the next search with
the same name (or `batchml hpo resume`) marks them ``orphaned``, retries them
with their parameters, and continues until ``n_trials`` trials have ended. A
driver stopped by Ctrl-C or SIGTERM marks its trials in flight ``interrupted``
itself, to the same effect (interrupts.py), and its caller gets
StudyInterrupted (a KeyboardInterrupt) or StudyTerminated (a SystemExit, 143).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import cloudpickle
import optuna
from distributed import Client, Scheduler
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage

from batchml._compat.optuna_integration import share_storage
from batchml.backends import dask_log
from batchml.hpo.bookkeeping import retry_orphans
from batchml.hpo.cluster import SearchCluster, check_request, connect, declares_trial_slots
from batchml.hpo.driver import Driver, TrialSetup, reader_of
from batchml.hpo.gpu_memory import parse_gpu_memory
from batchml.hpo.interrupts import Stop, StopRequests, stopped
from batchml.hpo.site_pool import SearchSite, SitePool
from batchml.hpo.sites import check_storage, site_plan
from batchml.hpo.spec import Objective, Search, Where
from batchml.hpo.storage import default_study_dir, open_storage, study_exists
from batchml.hpo.worker import warm_worker
from batchml.hpo.worker_pool import WorkerPool


def run(search: Search, where: Where | None = None, *, progress: bool = True) -> optuna.Study:
    """Run (or resume) ``search`` until ``search.n_trials`` trials have ended; return its study.

    ``where`` defaults to ``Where()``: the default site (the embedded local one
    unless configured); ``where.sites`` spreads it over several (sites.py).
    ``progress`` draws a live line of the search's counts.
    Ctrl-C stops it cleanly and raises StudyInterrupted, SIGTERM StudyTerminated;
    running it again resumes. dask's own log shows warnings only, unless dask's
    logging is configured.
    """
    where = where or Where()
    plan = site_plan(where)  # one Where per site; a bad one fails before a journal is made
    if where.sites is None:
        check_request(where)
    real_storage = open_storage(search.storage, search.study_name)  # bad: fails before any job
    check_storage(real_storage, plan)
    stop: Stop | None = None
    with (
        StopRequests(search.study_name) as requests,
        dask_log.quiet(),
        contextlib.ExitStack() as clusters,
    ):
        sites, owns = [], []
        for site_where in plan:
            workers = clusters.enter_context(connect(site_where))
            # The storage object itself serves every scheduler in this process (and the
            # driver); a scheduler elsewhere (a caller's client) gets its own copy.
            shared, own = share_storage(real_storage, workers.client, _scheduler_here(workers))
            sites.append(_site(search, site_where, workers, shared))
            owns.append(own)
        study = _open(search, _direct(owns, sites), real_storage)
        for key, value in search.study_attrs.items():
            study.set_user_attr(key, value)
        retry_orphans(study)
        for site_where, site in zip(plan, sites, strict=True):
            # workers connected by now import torch once, in parallel, and fork a process per slot
            site.client.run(warm_worker, site_where.trials_per_job)
        driver = Driver(
            study,
            reader_of(study, real_storage),
            SitePool(sites),
            n_trials=search.n_trials,
            max_retries=search.max_retries,
        )
        stop = driver.run(requests, progress=progress)
    if requests.signal is not None:  # the cluster is closed by now: jobs and workers ended
        raise stopped(stop or Stop(requests.signal, search.study_name))
    # The returned study reads the storage directly: the cluster (and its scheduler) are gone.
    return optuna.load_study(
        study_name=search.study_name, storage=real_storage, sampler=search.sampler,
        pruner=search.pruner,
    )  # fmt: skip


def _direct(owns: list[BaseStorage], sites: list[SearchSite]) -> BaseStorage:
    """The storage the driver calls: the object a scheduler in this process serves where a
    site has one (no round trip), else the first site's DaskStorage."""
    here = (own for own, site in zip(owns, sites, strict=True) if own is not site.setup.storage)
    return next(here, owns[0])


def _scheduler_here(workers: SearchCluster) -> Scheduler | None:
    """The scheduler of batchml's own cluster, which runs in this process (None: the
    caller's client, whose scheduler may run anywhere)."""
    scheduler = getattr(workers.cluster, "scheduler", None)
    return scheduler if isinstance(scheduler, Scheduler) else None


def _open(search: Search, shared: BaseStorage, real_storage: BaseStorage) -> optuna.Study:
    """The study through the scheduler's storage: loaded on a resume, else created."""
    if study_exists(real_storage, search.study_name):  # creating it anew logs an ERROR
        return optuna.load_study(
            study_name=search.study_name, storage=shared, sampler=search.sampler,
            pruner=search.pruner,
        )  # fmt: skip
    return optuna.create_study(
        study_name=search.study_name, storage=shared, direction=search.direction,
        sampler=search.sampler, pruner=search.pruner,
    )  # fmt: skip


def _site(search: Search, where: Where, workers: SearchCluster, shared: Any) -> SearchSite:
    """One site of the search: its workers, and what its trials carry."""
    patience, gpus = where.worker_patience_s, where.gpus_per_trial
    pool = WorkerPool(workers.client, workers.cluster, patience, gpus)
    return SearchSite(workers, pool, _setup(search, where, workers, shared), where.max_jobs)


def _setup(search: Search, where: Where, workers: SearchCluster, shared: Any) -> TrialSetup:
    checkpoints = where.checkpoint_dir or default_study_dir() / f"{search.study_name}.checkpoints"
    return TrialSetup(
        objective=cloudpickle.dumps(search.objective),
        storage=shared,
        gpus_per_trial=where.gpus_per_trial,
        site=workers.site,
        scratch_dir=workers.paths.scratch_dir,
        keep_scratch=workers.paths.keep_scratch,
        checkpoint_dir=Path(checkpoints),
        search_space=dict(search.search_space),
        drains=workers.cluster is not None or declares_trial_slots(workers.client),
        gpu_memory=parse_gpu_memory(where.gpu_memory_per_trial, where.gpus_per_trial),
    )


def run_study(
    objective: Objective,
    search_space: Mapping[str, BaseDistribution] | None = None,
    *,
    n_trials: int,
    site: str | None = None,
    gpus_per_trial: float = 0,
    gpu_memory_per_trial: str | None = None,
    trials_per_job: int = 1,
    max_jobs: int = 1,
    direction: Literal["minimize", "maximize"] = "minimize",
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    study_name: str = "batchml-study",
    storage: str | BaseStorage | None = None,
    max_retries: int = 1,
    client: Client | None = None,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    study_attrs: Mapping[str, Any] | None = None,
    worker_patience_s: float = 1800.0,
    sites: Mapping[str, Mapping[str, Any]] | None = None,
) -> optuna.Study:
    """``run`` with ``Search`` and ``Where``'s fields as keywords (see both for each one).

    ``sites`` runs the search on several sites at once: each key a site name or a site
    file's path, each value that site's overrides of ``max_jobs``, ``trials_per_job``,
    ``gpus_per_trial``, ``worker_patience_s`` and of what its jobs ask for (``walltime``,
    ``memory``, ``gpu_names``, ``gpu_memory``, ``gpu_capability``); the other keywords are
    the defaults of every site (sites.py).
    """
    search = Search(
        objective, n_trials, search_space=search_space or {}, direction=direction,
        sampler=sampler, pruner=pruner, study_name=study_name, storage=storage,
        max_retries=max_retries, study_attrs=study_attrs or {},
    )  # fmt: skip
    where = Where(
        site=site, gpus_per_trial=gpus_per_trial, gpu_memory_per_trial=gpu_memory_per_trial,
        trials_per_job=trials_per_job,
        max_jobs=max_jobs, client=client, checkpoint_dir=checkpoint_dir,
        worker_patience_s=worker_patience_s, sites=sites,
    )  # fmt: skip
    return run(search, where, progress=progress)
