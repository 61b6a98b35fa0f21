"""How much of dask's own log a user sees: its warnings, unless they asked for more.

A small study printed dozens of INFO lines of dask (the scheduler starting,
each worker registering, connections, shutdown; counted in BENCHMARKS.md)
around one progress line. dask logs
through a handler of its own (its 'distributed' logger does not propagate), so
a user's logging configuration never reached those lines; dask's own setting
does: ``logging`` in a dask YAML file, or DASK_LOGGING__DISTRIBUTED (``batchml
-v`` sets it to info). batchml lowers dask's log to warnings only where that
setting is not the user's.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import dask


def chosen_by_user() -> bool:
    """Whether the user configured dask's logging (a dask YAML file or the environment)."""
    return "logging" in dask.config.collect()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """dask's log at WARNING in this process for the block, unless the user chose its level."""
    logger = logging.getLogger("distributed")
    before = logger.level
    if not chosen_by_user():
        logger.setLevel(max(before, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(before)


def worker_environment() -> dict[str, str]:
    """The environment that makes a worker process follow the same rule."""
    return {} if chosen_by_user() else {"DASK_LOGGING__DISTRIBUTED": "warning"}
