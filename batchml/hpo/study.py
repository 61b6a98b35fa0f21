"""run_study: the driver of a search whose trials are dask tasks on batch GPU workers.

The driver alone asks Optuna for new trials and records how each ended, so the
trial budget is global and nothing is counted twice. It tells apart three
endings that Optuna alone would all call FAIL:
- the objective raised: FAIL, not retried (the code is wrong, a retry repeats it);
- the trial's process crashed: FAIL, not retried either (a segfault repeats too);
- the worker job vanished (preemption, walltime, node loss, condor_rm/scancel):
  FAIL marked ``preempted`` and retried with the same parameters and the
  intermediate values it had reported, up to ``max_retries`` times.
A driver that dies leaves RUNNING trials behind; the next run_study (or
`batchml hpo resume`) with the same name marks them ``orphaned``, retries
them the same way, and continues until ``n_trials`` trials have ended. A
driver stopped by Ctrl-C or SIGTERM marks its trials in flight ``interrupted``
itself, to the same effect (interrupts.py).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from signal import Signals
from typing import Any, Literal

import cloudpickle
import dask
import optuna
from distributed import Client, Future, wait
from distributed.client import FIRST_COMPLETED
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

# It sets a SIGINT handler (undone there): imported at start-up, on the main thread.
from batchml._compat.dask_jobqueue import JobQueueCluster
from batchml.backends import dask_log
from batchml.backends.base import SchedulerError
from batchml.hpo.interrupts import Stop, StopRequests, stopped
from batchml.hpo.isolation import Outcome, TrialContext
from batchml.hpo.outcomes import (
    ATTEMPT_ATTR,
    JOBS_REPLACED_ATTR,
    OUTCOME_ATTR,
    REASON_ATTR,
    RETRIED_ATTR,
    RETRIED_OUTCOMES,
    RETRY_OF_ATTR,
    WORKERS_DRAINED_ATTR,
    has_ended,
)
from batchml.hpo.progress import StudyProgress
from batchml.hpo.storage import default_study_dir, open_storage, study_exists
from batchml.hpo.walltime import TRIAL_RESOURCE, duration_estimate
from batchml.hpo.worker import TrialTask, execute_trial, warm_worker
from batchml.private_folder import PrivateFolderError
from batchml.resources import Resources
from batchml.sites import Paths, Site

Objective = Callable[[Any, TrialContext], Any]


@dataclass(frozen=True)
class Placement:
    """How trials map onto workers: GPUs each trial takes, and where its files go."""

    gpus_per_trial: int
    site: str
    scratch_dir: str  # the site's paths.scratch_dir: each worker makes a private folder there
    checkpoint_dir: Path
    search_space: Mapping[str, optuna.distributions.BaseDistribution]
    drains: bool = False  # workers declare TRIAL slots, so one near its walltime can drain
    keep_scratch: bool = False  # the site's paths.keep_scratch


# A task whose worker died comes back to the driver at once (to be recorded as preempted
# and retried as a new trial) rather than being rerun by dask under the same trial; and
# worker processes must not be daemonic, or they cannot start a process per trial.
TRIAL_DASK_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.worker.daemon": False,
}


def run_study(
    objective: Objective,
    search_space: Mapping[str, optuna.distributions.BaseDistribution] | None = None,
    *,
    n_trials: int,
    site: str | None = None,
    gpus_per_trial: int = 0,
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
) -> optuna.Study:
    """Run (or resume) a study until ``n_trials`` trials have ended; return it.

    Without ``client`` a cluster of ``max_jobs`` worker jobs, each holding
    ``gpus_per_trial * trials_per_job`` GPUs, is started on ``site``. A
    ``search_space`` is drawn before the objective runs (it reads trial.params);
    without one the objective calls trial.suggest_* itself. ``study_attrs`` are
    stored on the study (the CLI keeps its configuration there, for resume).
    With no worker connected for ``worker_patience_s`` the search stops with an
    error (pending jobs on a busy site count against it: raise it there).
    Ctrl-C stops it cleanly and raises StudyInterrupted (a KeyboardInterrupt),
    SIGTERM StudyTerminated (a SystemExit, status 143); calling it again resumes.
    dask's own log shows warnings only, unless dask's logging is configured.
    """
    from optuna_integration.dask import DaskStorage

    if client is None:  # a bad site or request fails before a journal is made
        from batchml.backends import backend_for

        resolved, resources = _request(site, gpus_per_trial, trials_per_job)
        backend_for(resolved).check_cluster(resources, max_jobs)
    real_storage = open_storage(storage, study_name)  # a bad storage fails before any job starts
    stop: Stop | None = None
    with (
        StopRequests(study_name) as requests,
        dask_log.quiet(),
        _client(client, site, gpus_per_trial, trials_per_job, max_jobs) as (
            dask,
            cluster,
            site_name,
        ),
    ):
        # One storage object, living with the scheduler, serves the driver and every
        # worker: two objects on one journal file would fight over its lock.
        shared = DaskStorage(real_storage, client=dask)
        if study_exists(real_storage, study_name):  # a resume (creating it anew logs an ERROR)
            study = optuna.load_study(
                study_name=study_name, storage=shared, sampler=sampler, pruner=pruner
            )
        else:
            study = optuna.create_study(
                study_name=study_name, storage=shared, direction=direction,
                sampler=sampler, pruner=pruner,
            )  # fmt: skip
        for key, value in (study_attrs or {}).items():
            study.set_user_attr(key, value)
        _retry_orphans(study)
        # workers connected by now import torch once, in parallel, and fork a process per slot
        dask.run(warm_worker, trials_per_job)
        paths = _site_paths(site) if client is None else Paths()
        place = Placement(
            gpus_per_trial=gpus_per_trial,
            site=site_name,
            scratch_dir=paths.scratch_dir,
            keep_scratch=paths.keep_scratch,
            checkpoint_dir=Path(
                checkpoint_dir or default_study_dir() / f"{study_name}.checkpoints"
            ),
            search_space=dict(search_space or {}),
            drains=cluster is not None or _declare_trial_slots(dask),
        )
        payload = cloudpickle.dumps(objective)
        stop = _drive(
            study, _reader(study, real_storage), payload, dask, cluster, shared, place, n_trials,
            max_retries, progress, worker_patience_s, requests,
        )  # fmt: skip
    if requests.signal is not None:  # the cluster is closed by now: jobs and workers ended
        raise stopped(stop or Stop(requests.signal, study_name))
    # The returned study reads the storage directly: the cluster (and its scheduler) are gone.
    return optuna.load_study(
        study_name=study_name, storage=real_storage, sampler=sampler, pruner=pruner
    )


@contextlib.contextmanager
def _client(
    client: Client | None, site: str | None, gpus: int, per_job: int, jobs: int
) -> Iterator[tuple[Client, Any, str]]:
    if client is not None:
        yield client, None, site or "given-client"
        return
    from batchml.backends import backend_for

    resolved, resources = _request(site, gpus, per_job)
    with (
        dask.config.set(TRIAL_DASK_CONFIG),
        backend_for(resolved).cluster(
            resources, jobs=jobs, worker_resources={TRIAL_RESOURCE: per_job}
        ) as cluster,
        Client(cluster) as started,
    ):
        yield started, cluster, resolved.name


def _request(site: str | None, gpus: int, per_job: int) -> tuple[Site, Resources]:
    """The site and what each of its worker jobs asks for (GPUs for ``per_job`` trials)."""
    from batchml.resources import Resources
    from batchml.site_files import load_site

    resolved = load_site(site).site
    cores = max(resolved.defaults.cores, per_job)  # one thread per concurrent trial
    return resolved, Resources.from_site(resolved, gpus=gpus * per_job, cores=cores)


def _site_paths(site: str | None) -> Paths:
    from batchml.site_files import load_site

    return load_site(site).site.paths


def _reader(study: optuna.Study, real_storage: BaseStorage) -> optuna.Study:
    """The study as the driver reads it each cycle (every trial, the study's attributes).

    Through DaskStorage each read runs on the scheduler's event loop, and every
    worker's round trip (a suggest, a report) waits behind it; the whole trial
    list, read after each trial ends, was the largest of those. A journal file
    or a database is read as well through a storage object of the driver's own,
    which sees what the scheduler's copy writes (a journal read replays the
    file and takes no lock); an in-memory storage is not, and is read through
    the scheduler.
    """
    if isinstance(real_storage, JournalStorage | RDBStorage):
        return optuna.load_study(study_name=study.study_name, storage=real_storage)
    return study


def _drive(
    study: optuna.Study,
    reader: optuna.Study,
    objective: bytes,
    client: Client,
    cluster: Any,
    storage: Any,
    place: Placement,
    n_trials: int,
    max_retries: int,
    show: bool,
    patience_s: float,
    requests: StopRequests,
) -> Stop | None:
    """Keep the slots busy until ``n_trials`` trials have ended, or a signal asks to stop."""
    running: dict[Future, optuna.Trial] = {}
    where: dict[Future, str] = {}  # the worker each trial was sent to
    resources = {"GPU": place.gpus_per_trial} if place.gpus_per_trial else {}
    if place.drains:
        resources[TRIAL_RESOURCE] = 1
    pool = WorkerPool(client, cluster, patience_s, place.gpus_per_trial)
    sent = 0

    def send(trial: optuna.Trial, worker: str, expected_s: float | None) -> None:
        nonlocal sent
        sent += 1
        task = _task(study, trial, objective, storage, place, expected_s)
        future = client.submit(
            execute_trial, task, resources=resources or None, pure=False,
            key=f"trial-{study.study_name}-{trial.number}-{sent}",
            workers=[worker], allow_other_workers=True,
        )  # fmt: skip
        running[future] = trial
        where[future] = worker

    with StudyProgress(study, n_trials, enabled=show) as bar:
        # The trials are read once per cycle (all of them, so not once per decision),
        # and the budget and the progress line share them.
        trials = reader.get_trials(deepcopy=False)
        while True:
            if requests.signal is not None:
                return _interrupt(study, reader, running, requests.signal, n_trials, max_retries)
            finished = sum(1 for trial in trials if has_ended(trial))
            if not running and finished >= n_trials:
                bar.update(trials, running=0, workers=len(pool.slots))  # its last line
                return None
            workers = pool.check()
            expected_s = duration_estimate(trials) if place.drains else None
            while worker := Capacity.place(
                pool.slots, Counter(where.values()), n_trials - finished - len(running)
            ):
                send(_ask(study), worker, expected_s)
            for future in pool.stranded(where):  # dask would never run these: send them again
                client.cancel(future)
                del where[future]
                worker = Capacity.least_busy(pool.slots, Counter(where.values()))
                send(running.pop(future), str(worker), expected_s)
            # Bookkeeping comes after the trials are out: a freed slot waits for none of it.
            bar.update(trials, running=len(running), workers=workers)
            stored = reader.user_attrs  # one read, not one per count
            for attr, count in (
                (JOBS_REPLACED_ATTR, pool.replaced),
                (WORKERS_DRAINED_ATTR, pool.drained),
            ):
                if count != stored.get(attr, 0):
                    study.set_user_attr(attr, count)
            done: set[Future] = set()
            if running:
                with contextlib.suppress(TimeoutError):  # nothing ended: refresh the progress
                    done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
            else:
                time.sleep(0.5)  # no worker yet
            for future in done:
                _record(study, running.pop(future), future, max_retries)
                where.pop(future, None)
                future.release()  # its worker holds no result for us: it may retire at once
            trials = reader.get_trials(deepcopy=False)


class Capacity:
    """Which worker the next trial goes to: a free slot first, else one queued per worker.

    A queued trial starts the moment a slot of its worker frees, without a round
    trip to the driver. The driver places trials itself because dask, choosing
    among workers that were all busy, sometimes queued two trials behind one
    worker and none behind another: measured, one slot then ran 9 trials of a
    64-trial study while another ran 7, a whole trial longer (in one run in four).
    Once no more than a round is left, trials go only to free slots: one queued
    in the last round would wait behind a busy worker while another's slot idles.
    """

    @staticmethod
    def place(slots: Mapping[str, int], sent: Mapping[str, int], left: int) -> str | None:
        """The worker for one more trial (None: none now); ``slots`` per worker connected,
        trials ``sent`` to each and not ended, ``left`` trials of the budget not sent."""
        worker = Capacity.least_busy(slots, sent)
        if left <= 0 or worker is None:
            return None
        free = slots[worker] - sent.get(worker, 0)
        if free > 0 or (free == 0 and left > sum(slots.values())):
            return worker
        return None

    @staticmethod
    def least_busy(slots: Mapping[str, int], sent: Mapping[str, int]) -> str | None:
        """The worker taking trials with the most free slots (or the fewest waiting)."""
        taking = [w for w, count in slots.items() if count > 0]
        return max(taking, key=lambda w: slots[w] - sent.get(w, 0), default=None)


def _declare_trial_slots(client: Client) -> bool:
    """Whether the given cluster's workers declare TRIAL slots (then they can drain)."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return bool(workers) and all(TRIAL_RESOURCE in w.get("resources", {}) for w in workers)


class WorkerPool:
    """Keeps the worker jobs alive: replaces those that ended, and notices when none are left.

    dask-jobqueue does not resubmit a job that was cancelled, preempted or hit its
    walltime; without this a study would slowly lose its workers. A job counts as
    ended once its worker, seen before, has been gone for ``replace_after_s``
    (a restarting worker comes back sooner). Local clusters restart their own.
    """

    def __init__(
        self,
        client: Client,
        cluster: Any,
        patience_s: float,
        gpus_per_trial: int = 0,
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
            from batchml.backends.worker_jobs import drop_refused

            refused = drop_refused(self.cluster)
            if refused:
                raise SchedulerError(
                    f"the batch system refused a worker job: {refused[0]}",
                    hint="fix the site file (`batchml site show SITE` says where each value "
                    "comes from); `batchml submit --dry-run` shows the submit file",
                )
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        self.slots = {address: self._slots(w) for address, w in workers.items()}
        gpus = {a: int(w.get("resources", {}).get("GPU", 0)) for a, w in workers.items()}
        if self.gpus_per_trial and gpus and max(gpus.values()) < self.gpus_per_trial:
            raise SchedulerError(
                f"a trial needs {self.gpus_per_trial} GPU(s) and no dask worker has that many: "
                f"their GPU resources are {sorted(set(gpus.values()))}",
                hint="start workers with `--resources GPU=N` (batchml's own clusters do), "
                "or lower gpus_per_trial",
            )
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

    def _slots(self, worker: Mapping[str, Any]) -> int:
        """Trials the worker runs at once: its TRIAL slots, else its GPUs or threads."""
        resources = worker.get("resources", {})
        if worker.get("status", "running") != "running":
            return 0
        if TRIAL_RESOURCE in resources:
            return int(resources[TRIAL_RESOURCE])
        if self.gpus_per_trial:
            return int(resources.get("GPU", 0)) // self.gpus_per_trial
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
        unrunnable = set(self.client.run_on_scheduler(_unrunnable, keys=lost))
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
            and not _executing(w)
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
        lost-worker handler would cancel it if it connected later than 15 s after
        the ended job left: both happen to a job that waits in a busy queue.
        """
        assert self.cluster is not None
        fresh = self.cluster.new_worker_spec()
        del self.cluster.worker_spec[name]
        self.cluster.worker_spec.update(fresh)
        # Corrects the cluster to its spec: condor_rm/scancel of the ended job (an error
        # for a job that has left the queue is ignored), a submission of the new one.
        self.cluster.scale(len(self.cluster.worker_spec))
        self.replaced += 1


def _unrunnable(keys: list[str], dask_scheduler: Any = None) -> list[str]:
    """Of ``keys``, those the scheduler holds as unrunnable (run on the scheduler)."""
    tasks = dask_scheduler.tasks
    return [key for key in keys if key in tasks and tasks[key].state == "no-worker"]


def _executing(worker: Mapping[str, Any]) -> int:
    """Tasks the worker runs now, from its last heartbeat (tasks counted by state)."""
    counts = worker.get("metrics", {}).get("task_counts", {})
    return int(counts.get("executing", 0)) + int(counts.get("long-running", 0))


def _ask(study: optuna.Study) -> optuna.Trial:
    """A new trial; a retry (enqueued with its parameters) gets its predecessor's reports."""
    trial = study.ask()
    origin = trial.user_attrs.get(RETRY_OF_ATTR)
    if origin is not None:
        previous = study.trials[int(origin)]
        for step, value in previous.intermediate_values.items():
            study._storage.set_trial_intermediate_value(trial._trial_id, step, value)
    return trial


def _task(
    study: optuna.Study,
    trial: optuna.Trial,
    objective: bytes,
    storage: Any,
    place: Placement,
    expected_s: float | None,
) -> TrialTask:
    root = _first_attempt(study, trial.number, trial.user_attrs)
    return TrialTask(
        study_name=study.study_name,
        storage=storage,
        study_id=study._study_id,
        directions=tuple(study.directions),
        trial_id=trial._trial_id,
        objective=objective,
        gpus=place.gpus_per_trial,
        site=place.site,
        scratch_dir=place.scratch_dir,
        keep_scratch=place.keep_scratch,
        checkpoint_dir=str(place.checkpoint_dir / f"trial-{root}"),  # a retry finds its checkpoints
        attempt=int(trial.user_attrs.get(ATTEMPT_ATTR, 1)),
        sampler=study.sampler,
        pruner=study.pruner,
        search_space=place.search_space,
        expected_s=expected_s,
    )


def _first_attempt(study: optuna.Study, number: int, attrs: dict[str, Any]) -> int:
    """The number of the trial a chain of retries started from."""
    while RETRY_OF_ATTR in attrs:
        number = int(attrs[RETRY_OF_ATTR])
        attrs = study.trials[number].user_attrs
    return number


def _record(study: optuna.Study, trial: optuna.Trial, future: Future, max_retries: int) -> None:
    if study._storage.get_trial(trial._trial_id).state.is_finished():
        return  # recorded already: a recomputed task (its first result was lost with a worker)
    try:
        outcome: Outcome = future.result()
    except PrivateFolderError as exc:  # no private scratch on the worker: a retry would not either
        _fail(study, trial, "raised", str(exc), max_retries)
        raise
    except Exception as exc:  # the worker, not the objective, failed
        _fail(study, trial, "preempted", f"{type(exc).__name__}: {exc}", max_retries)
        return
    if outcome.kind == "complete":
        study.tell(trial, outcome.value)
    elif outcome.kind == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        _fail(study, trial, outcome.kind, outcome.message, max_retries)


def _fail(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial, kind: str, why: str, max_retries: int
) -> None:
    storage = study._storage
    stored = storage.get_trial(trial._trial_id)  # the worker set its params, not this object
    storage.set_trial_user_attr(trial._trial_id, OUTCOME_ATTR, kind)
    storage.set_trial_user_attr(trial._trial_id, REASON_ATTR, why[-4000:])
    attempt = int(stored.user_attrs.get(ATTEMPT_ATTR, 1))
    retry = kind in RETRIED_OUTCOMES and attempt <= max_retries
    if retry:
        storage.set_trial_user_attr(trial._trial_id, RETRIED_ATTR, True)
        study.enqueue_trial(
            dict(stored.params),
            user_attrs={RETRY_OF_ATTR: stored.number, ATTEMPT_ATTR: attempt + 1},
            skip_if_exists=False,
        )
    if isinstance(trial, optuna.Trial):
        study.tell(trial, state=TrialState.FAIL)
    else:
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def _interrupt(
    study: optuna.Study,
    reader: optuna.Study,
    running: Mapping[Future, optuna.Trial],
    received: Signals,
    n_trials: int,
    max_retries: int,
) -> Stop:
    """The trials in flight when a signal came: recorded if they had ended, else interrupted.

    An interrupted trial did nothing wrong: like an orphaned one, it is retried
    with its parameters however often it happens. Its task is cancelled; it
    stops with its worker when the cluster closes (on a cluster the caller gave,
    it runs on, and what it reports is ignored).
    """
    interrupted = 0
    for future, trial in running.items():
        if future.done():
            _record(study, trial, future, max_retries)
            continue
        future.cancel()
        _fail(study, trial, "interrupted", f"the search was stopped by {received.name}", 10**9)
        interrupted += 1
    ended = sum(1 for trial in reader.get_trials(deepcopy=False) if has_ended(trial))
    return Stop(received, study.study_name, ended, n_trials, interrupted)


def _retry_orphans(study: optuna.Study) -> None:
    """Trials a dead driver left RUNNING: mark them orphaned and retry them."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        _fail(
            study, trial, "orphaned", "the driver stopped while this trial ran", max_retries=10**9
        )
