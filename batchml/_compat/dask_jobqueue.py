"""dask-jobqueue, imported without the SIGINT handler it installs.

Importing dask_jobqueue imports ``dask_jobqueue.runner``, which runs
``signal.signal(SIGINT, lambda *_: sys.exit())`` for the whole process. Ctrl-C
then raises ``SystemExit(None)``: status 0, so ``batchml hpo run ... && publish``
carried on after an interrupt, and no ``except KeyboardInterrupt`` ever ran.
batchml imports dask-jobqueue only through this module, which puts Python's own
handler back when it finds that one (also when dask-jobqueue was imported
first by someone else). Checked on dask-jobqueue 0.9.0
(tests/unit/test_compat.py fails once a release stops doing it: then this goes).

Like any ``signal.signal`` call, the import must happen on the main thread:
dask-jobqueue's own call raises ValueError elsewhere.
"""

from __future__ import annotations

import signal
import threading

import dask_jobqueue
from dask_jobqueue import HTCondorCluster, JobQueueCluster, SLURMCluster
from dask_jobqueue.htcondor import HTCondorJob
from dask_jobqueue.slurm import SLURMJob

CHECKED_ON = "0.9.0"
HANDLER_MODULE = "dask_jobqueue.runner"  # where the handler it installs is defined


def installed_its_handler() -> bool:
    """Whether the process's SIGINT handler is the one dask-jobqueue installs."""
    handler = signal.getsignal(signal.SIGINT)
    return getattr(handler, "__module__", None) == HANDLER_MODULE


if installed_its_handler() and threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, signal.default_int_handler)

__all__ = [
    "CHECKED_ON",
    "HTCondorCluster",
    "HTCondorJob",
    "JobQueueCluster",
    "SLURMCluster",
    "SLURMJob",
    "dask_jobqueue",
]
