"""The loop of a search: keep every trial slot busy until ``n_trials`` trials have ended.

Each cycle the driver sends new trials to the workers with room for them
(placement.py), sends again the trials dask would hold unrunnable
(worker_pool.py), and records the trials that ended (bookkeeping.py). It reads
the study once, at the start: from then on it counts what it records itself
(tally.py), so a cycle costs the same in a study of 10 trials or 10,000, and a
cycle starts as soon as a trial ends (each trial's future puts itself in a
queue when it is done). A signal noted by StopRequests is acted on at the top of a
cycle, never inside one (interrupts.py): the trials in flight are then recorded
as interrupted and retried when the search is resumed.
"""

from __future__ import annotations

import queue
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from signal import Signals
from typing import TYPE_CHECKING, Any

import optuna
from distributed import Future
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, JournalStorage, RDBStorage

from batchml._compat.optuna import study_id, trial_id
from batchml.hpo import bookkeeping
from batchml.hpo.gpu_memory import GpuMemory
from batchml.hpo.interrupts import Stop, StopRequests
from batchml.hpo.outcome import (
    ATTEMPT_ATTR,
    JOBS_REPLACED_ATTR,
    RETRY_ALONE_ATTR,
    SITES_ATTR,
    WORKERS_DRAINED_ATTR,
    Outcome,
)
from batchml.hpo.placement import least_busy, next_worker
from batchml.hpo.progress import StudyProgress
from batchml.hpo.tally import Recorded, Tally
from batchml.hpo.walltime import TRIAL_RESOURCE
from batchml.hpo.worker import TrialTask, execute_trial

if TYPE_CHECKING:
    from batchml.hpo.site_pool import SitePool


@dataclass(frozen=True)
class TrialSetup:
    """What every trial's task carries besides its trial: the same for the whole search."""

    objective: bytes  # cloudpickled: dask's plain pickle would send a script's function by name
    storage: Any  # the DaskStorage every worker reaches the study through
    gpus_per_trial: float
    site: str
    scratch_dir: str  # the site's paths.scratch_dir: each worker makes a private folder there
    keep_scratch: bool  # the site's paths.keep_scratch
    checkpoint_dir: Path
    search_space: Mapping[str, BaseDistribution]
    drains: bool  # workers declare TRIAL slots, so one near its walltime can drain
    gpu_memory: GpuMemory = None  # trials sharing a GPU are packed by this memory

    def resources(self, alone: bool = False) -> dict[str, float] | None:
        """The dask resources each trial holds while it runs (a share of a GPU: 1/k of one;
        ``alone``, a retry of a trial out of memory beside others: a whole one)."""
        gpus = 1.0 if alone and 0 < self.gpus_per_trial < 1 else self.gpus_per_trial
        needs: dict[str, float] = {"GPU": gpus} if gpus else {}
        if self.drains:
            needs[TRIAL_RESOURCE] = 1
        return needs or None

    def task(self, study: optuna.Study, trial: optuna.Trial, expected_s: float | None) -> TrialTask:
        root = bookkeeping.first_attempt(study, trial.number, trial.user_attrs)
        return TrialTask(
            study_name=study.study_name,
            storage=self.storage,
            study_id=study_id(study),
            directions=tuple(study.directions),
            trial_id=trial_id(trial),
            objective=self.objective,
            gpus=self.gpus_per_trial,
            site=self.site,
            scratch_dir=self.scratch_dir,
            keep_scratch=self.keep_scratch,
            checkpoint_dir=str(self.checkpoint_dir / f"trial-{root}"),  # a retry finds its own
            attempt=int(trial.user_attrs.get(ATTEMPT_ATTR, 1)),
            sampler=study.sampler,
            pruner=study.pruner,
            search_space=self.search_space,
            expected_s=expected_s,
            gpu_memory=self.gpu_memory,
            alone=bool(trial.user_attrs.get(RETRY_ALONE_ATTR)),
        )


def reader_of(study: optuna.Study, real_storage: BaseStorage) -> optuna.Study:
    """The study as the driver reads it at the start (every trial, the study's attributes).

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


POOL_CHECK_S = 0.5  # how often the driver asks the scheduler about its workers
CYCLE_S = 1.0  # the longest a cycle waits for a trial to end (signals, workers, progress)


class Driver:
    """One search's loop: ``run`` returns once ``n_trials`` trials have ended, or where a
    signal stopped it.

    ``study`` writes through the scheduler's storage (what the workers use),
    ``reader`` reads the same study (see ``reader_of``); ``pool`` holds the
    workers of every site, and what each site's trials carry.
    """

    def __init__(
        self,
        study: optuna.Study,
        reader: optuna.Study,
        pool: SitePool,
        *,
        n_trials: int,
        max_retries: int,
    ) -> None:
        self.study = study
        self.reader = reader
        self.pool = pool
        self.n_trials = n_trials
        self.max_retries = max_retries
        self.running: dict[Future, optuna.Trial] = {}
        self.where: dict[Future, str] = {}  # the worker each trial was sent to
        self.sent = 0
        self.done: queue.SimpleQueue[Future] = queue.SimpleQueue()  # futures that ended
        self.tally = Tally(None)  # read from the study when the search starts
        self.stored: dict[str, Any] = {}  # the study's user attributes as last written
        self.checked = -POOL_CHECK_S  # when the workers were last asked about
        self.workers = 0

    def run(self, requests: StopRequests, *, progress: bool = True) -> Stop | None:
        """Keep the slots busy until ``n_trials`` trials have ended, or a signal asks to stop."""
        self.tally = Tally.of(self.reader.get_trials(deepcopy=False), self.study.directions)
        self.stored = dict(self.reader.user_attrs)
        with StudyProgress(self.study, self.n_trials, self.tally, enabled=progress) as bar:
            while True:
                if requests.signal is not None:
                    return self._interrupt(requests.signal)
                if not self.running and self.tally.ended >= self.n_trials:
                    bar.update(running=0, workers=len(self.pool.slots))  # its last line
                    return None
                self._check_pool()
                self._retry_abandoned()
                expected_s = self.tally.duration_estimate() if self.pool.drains else None
                self._fill(self.n_trials - self.tally.ended, expected_s)
                self._resend_stranded(expected_s)
                # Bookkeeping comes after the trials are out: a freed slot waits for none of it.
                bar.update(running=len(self.running), workers=self.workers, note=self.pool.note())
                self._store_pool_counts()
                for future in self._ended():
                    self._count(bookkeeping.record(self.study, self.running.pop(future), future,
                                                   self.max_retries))  # fmt: skip
                    self.where.pop(future, None)
                    future.release()  # its worker holds no result for us: it may retire at once

    def _check_pool(self) -> None:
        """Ask the scheduler about the workers, at most every ``POOL_CHECK_S`` (one round
        trip; between checks, trials go by the slots last seen, and dask runs one sent to
        a worker that left on another)."""
        now = time.monotonic()
        if now - self.checked >= POOL_CHECK_S:
            self.workers = self.pool.check()
            self.checked = now

    def _count(self, recorded: Recorded | None) -> None:
        if recorded is not None:
            self.tally.add(recorded)

    def _fill(self, left: int, expected_s: float | None) -> None:
        """Send new trials while a worker has room for one; ``left``: trials not ended."""
        while worker := next_worker(
            self.pool.slots, Counter(self.where.values()), left - len(self.running)
        ):
            self._send(bookkeeping.ask(self.study), worker, expected_s)

    def _resend_stranded(self, expected_s: float | None) -> None:
        """Send again the trials dask would never run (their worker left)."""
        for future in self.pool.stranded(self.where):
            future.cancel()
            del self.where[future]
            worker = least_busy(self.pool.slots, Counter(self.where.values()))
            self._send(self.running.pop(future), str(worker), expected_s)

    def _retry_abandoned(self) -> None:
        """Trials on a site that failed: retried elsewhere with their parameters, however often
        (the site failed, not the trial)."""
        for future, why in self.pool.abandoned(self.where):
            future.cancel()
            del self.where[future]
            self._count(
                bookkeeping.fail(self.study, self.running.pop(future), Outcome.PREEMPTED, why, None)
            )

    def _send(self, trial: optuna.Trial, worker: str, expected_s: float | None) -> None:
        self.sent += 1
        site, address = self.pool.site_of(worker)
        task = site.setup.task(self.study, trial, expected_s)
        future = site.client.submit(
            execute_trial, task, resources=site.setup.resources(task.alone), pure=False,
            key=f"trial-{self.study.study_name}-{trial.number}-{self.sent}",
            workers=[address], allow_other_workers=True,
        )  # fmt: skip
        self.running[future] = trial
        self.where[future] = worker
        future.add_done_callback(self.done.put)

    def _store_pool_counts(self) -> None:
        """Keep the study's counts of replaced jobs and drained workers up to date."""
        for attr, count in (
            (JOBS_REPLACED_ATTR, self.pool.replaced),
            (WORKERS_DRAINED_ATTR, self.pool.drained),
            (SITES_ATTR, self.pool.states()),
        ):
            if count != self.stored.get(attr, 0):
                self.study.set_user_attr(attr, count)
                self.stored[attr] = count

    def _ended(self) -> list[Future]:
        """The trials that end within ``CYCLE_S`` (none: the progress line is redrawn)."""
        if not self.running:
            time.sleep(0.5)  # no worker yet
            return []
        try:
            ended = [self.done.get(timeout=CYCLE_S)]
        except queue.Empty:
            return []
        while not self.done.empty():
            ended.append(self.done.get())
        # a future sent again elsewhere (its own was cancelled) is no longer running
        return [future for future in dict.fromkeys(ended) if future in self.running]

    def _interrupt(self, received: Signals) -> Stop:
        """The trials in flight when a signal came: recorded if they had ended, else interrupted.

        An interrupted trial did nothing wrong: like an orphaned one, it is retried
        with its parameters however often it happens. Its task is cancelled; it
        stops with its worker when the cluster closes (on a cluster the caller gave,
        it runs on, and what it reports is ignored).
        """
        interrupted = 0
        for future, trial in self.running.items():
            if future.done():
                self._count(bookkeeping.record(self.study, trial, future, self.max_retries))
                continue
            future.cancel()
            why = f"the search was stopped by {received.name}"
            self._count(bookkeeping.fail(self.study, trial, Outcome.INTERRUPTED, why, None))
            interrupted += 1
        return Stop(received, self.study.study_name, self.tally.ended, self.n_trials, interrupted)
