"""A dask cluster whose one worker runs in the test's own process (a task can share its objects)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from distributed import Client, LocalCluster


@contextlib.contextmanager
def inprocess_client(threads: int = 2) -> Iterator[Client]:
    """A client of one in-process worker with ``threads`` threads, connected on return."""
    with (
        LocalCluster(
            n_workers=1, processes=False, threads_per_worker=threads, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(1, timeout=60)
        yield client
