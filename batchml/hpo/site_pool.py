"""The workers of every site of a search, as one pool of trial slots for its driver.

Each site keeps its own cluster, scheduler and WorkerPool (worker_pool.py):
dask-jobqueue runs one batch system per scheduler. The driver sees one pool:
each slot's worker is named ``site|address``, so it places a trial on any free
slot and sends it through that site's client. A site that fails (its
WorkerPool raises SchedulerError: jobs refused, no worker for too long, no
worker with the GPUs a trial needs) is taken out: its trials in flight are
given back to the driver to retry elsewhere, and the site is tried again after
a back-off (sites.Backoff). With one site, its failure stops the search, as it
always did; with several, only the failure of every site does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from distributed import Client, Future

from batchml._compat.distributed import restart_absent
from batchml.backends.base import SchedulerError
from batchml.hpo.cluster import SearchCluster
from batchml.hpo.driver import TrialSetup
from batchml.hpo.sites import Backoff
from batchml.hpo.worker_pool import WorkerPool

SEP = "|"  # between a site's name and a worker's address in the pool's worker names


@dataclass
class SearchSite:
    """One site of a search: its cluster, its workers, what its trials carry, its back-off."""

    workers: SearchCluster
    pool: WorkerPool
    setup: TrialSetup
    jobs: int  # the worker jobs it runs when up
    backoff: Backoff = field(default_factory=Backoff)

    @property
    def name(self) -> str:
        return self.workers.site

    @property
    def client(self) -> Client:
        return self.workers.client


class SitePool:
    """The sites of a search as one pool (see the module docstring).

    ``slots`` maps each worker of the sites that are up (``site|address``) to
    the trials it runs at once; ``check`` refreshes it.
    """

    def __init__(self, sites: list[SearchSite]) -> None:
        self.sites = sites
        self.slots: dict[str, int] = {}
        self._by_name = {site.name: site for site in sites}

    @property
    def replaced(self) -> int:
        return sum(site.pool.replaced for site in self.sites)

    @property
    def drained(self) -> int:
        return sum(site.pool.drained for site in self.sites)

    @property
    def drains(self) -> bool:
        """Some site's workers declare TRIAL slots, so trials need a duration estimate."""
        return any(site.setup.drains for site in self.sites)

    def site_of(self, worker: str) -> tuple[SearchSite, str]:
        """The site of a pool worker name, and the worker's address there."""
        name, _, address = worker.rpartition(SEP)
        return self._by_name[name], address

    def check(self) -> int:
        """The number of workers now, over the sites that are up; SchedulerError when no site
        can run (with one site: its own error, at once)."""
        now = time.time()
        count = 0
        for site in self.sites:
            if site.backoff.due(now):
                self._try_again(site)
            if site.backoff.down:
                continue
            try:
                count += site.pool.check()
            except SchedulerError as exc:
                if len(self.sites) == 1:
                    raise
                site.backoff.fail(exc.message, now)
                continue
            if any(site.pool.slots.values()):
                site.backoff.recovered()
        self.slots = {
            f"{site.name}{SEP}{address}": slots
            for site in self.sites if not site.backoff.down
            for address, slots in site.pool.slots.items()
        }  # fmt: skip
        if all(site.backoff.down for site in self.sites):
            reasons = "; ".join(f"{s.name}: {s.backoff.reason}" for s in self.sites)
            raise SchedulerError(
                f"no site can run trials: {reasons}",
                hint="fix the sites (`batchml site show SITE`, `batchml jobs --site SITE`) "
                "and resume the study (`batchml hpo resume`, or run it again)",
            )
        return count

    def _try_again(self, site: SearchSite) -> None:
        """A failed site's wait is over: start its worker jobs again, and give them patience."""
        site.backoff.retried()
        site.pool.since = time.monotonic()
        cluster = site.workers.cluster
        if cluster is not None:
            connected = {str(w.get("name")) for w in _workers(site.client).values()}
            restart_absent(cluster, connected, site.jobs)

    def stranded(self, where: Mapping[Future, str]) -> list[Future]:
        """Trials that dask holds unrunnable on the sites that are up (WorkerPool.stranded)."""
        found = []
        for site in self.sites:
            if not site.backoff.down:
                found += site.pool.stranded(self._at(site, where))
        return found

    def abandoned(self, where: Mapping[Future, str]) -> list[tuple[Future, str]]:
        """Trials not ended on sites that are down, with why: the driver retries them elsewhere."""
        return [
            (future, f"site {site.name} failed: {site.backoff.reason}")
            for site in self.sites if site.backoff.down
            for future in self._at(site, where) if not future.done()
        ]  # fmt: skip

    def _at(self, site: SearchSite, where: Mapping[Future, str]) -> dict[Future, str]:
        """Of ``where`` (future -> pool worker), the futures on ``site``, with their address."""
        prefix = f"{site.name}{SEP}"
        return {f: w.removeprefix(prefix) for f, w in where.items() if w.startswith(prefix)}

    def note(self) -> str:
        """The sites that are down, for the progress line: ``hpc: down, retry in 2 min``."""
        now = time.time()
        return "  ".join(n for s in self.sites if (n := s.backoff.describe(s.name, now)))

    def states(self) -> dict[str, dict[str, Any]]:
        """What `hpo status` shows of each site: its slots now, why it is down, until when."""
        return {
            site.name: {
                "slots": sum(site.pool.slots.values()) if not site.backoff.down else 0,
                "down": site.backoff.reason if site.backoff.down else None,
                "retry_at": site.backoff.retry_at,
            }
            for site in self.sites
        }


def _workers(client: Client) -> Mapping[str, Any]:
    return dict(client.scheduler_info(n_workers=-1)["workers"])
