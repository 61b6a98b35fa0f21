"""dask-jobqueue (and the distributed SpecCluster under it), reached only through here.

What batchml needs that neither library offers as a documented interface:

- the SIGINT handler. Importing dask_jobqueue imports ``dask_jobqueue.runner``,
  which runs ``signal.signal(SIGINT, lambda *_: sys.exit())`` for the whole
  process. Ctrl-C then raises ``SystemExit(None)``: status 0, so ``batchml hpo
  run ... && publish`` carried on after an interrupt, and no ``except
  KeyboardInterrupt`` ever ran. This module puts Python's own handler back
  when it finds that one (also when dask-jobqueue was imported first by
  someone else). Like any ``signal.signal`` call, the import must happen on
  the main thread: dask-jobqueue's own call raises ValueError elsewhere.
- a worker job's shell command (``Job._command_template``) and, for HTCondor,
  its submit entries (``HTCondorJob.job_header_dict``), its log folder
  (``Job.log_directory``) and executable (``HTCondorJob.executable``): the
  HTCondor worker description is rewritten for the submit language and linted.
- a refused submission. dask-jobqueue submits worker jobs from a callback on
  its event loop; when sbatch or condor_submit refuses one (a wrong partition,
  a bad requirement, an expired token) the error is only logged and the
  cluster has one worker less, so a search would wait out its patience for
  workers that never come. ``KeepsSubmitError`` keeps the error on the job
  (marked failed, which the cluster's shutdown expects of a dead job), and
  ``drop_refused`` takes it out of the cluster's ``workers`` and
  ``worker_spec`` (SpecCluster's attributes, named in its docstring only).
- ``interface_address``: ``distributed.utils.get_ip_interface``, which
  dask-jobqueue uses for its own ``interface`` option.

Checked on the versions in CHECKED_ON: tests/unit/test_compat_dask_jobqueue.py
fails on another release, naming the name that moved, until each is checked again.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping
from typing import Any

import dask_jobqueue
from dask_jobqueue import HTCondorCluster, JobQueueCluster, SLURMCluster
from dask_jobqueue.core import Job
from dask_jobqueue.htcondor import HTCondorJob
from dask_jobqueue.slurm import SLURMJob
from distributed.core import Status
from distributed.deploy.spec import ProcessInterface, SpecCluster

CHECKED_ON = {"dask-jobqueue": "0.9.0", "distributed": "2026.8.0"}
HANDLER_MODULE = "dask_jobqueue.runner"  # where the SIGINT handler it installs is defined


def installed_its_handler() -> bool:
    """Whether the process's SIGINT handler is the one dask-jobqueue installs."""
    handler = signal.getsignal(signal.SIGINT)
    return getattr(handler, "__module__", None) == HANDLER_MODULE


if installed_its_handler() and threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, signal.default_int_handler)


def rewrite_worker_command(job: Job, rewrite: Callable[[str], str]) -> None:
    """Replace the shell command a worker job runs by ``rewrite(command)``.

    Called in a Job subclass's ``__init__``, after dask-jobqueue's.
    """
    job._command_template = rewrite(job._command_template)


def submit_entries(job: HTCondorJob) -> dict[str, Any]:
    """The entries of an HTCondor worker's submit description, to change in place."""
    entries: dict[str, Any] = job.job_header_dict
    return entries


def log_directory(job: Job) -> str | None:
    """The folder a worker job writes its logs to (the cluster's, or dask's configuration)."""
    folder: str | None = job.log_directory
    return folder


def executable(job: HTCondorJob) -> str:
    """The program an HTCondor worker description runs (a shell, given the command)."""
    return str(job.executable)


class KeepsSubmitError:
    """Mixed in before a dask-jobqueue Job class: ``submit_error`` holds a failed submission."""

    submit_error: BaseException | None = None

    async def start(self) -> None:
        try:
            await super().start()  # type: ignore[misc]
        except Exception as exc:
            self.submit_error = exc
            self.status = Status.failed
            raise


def workers_of(cluster: SpecCluster) -> Mapping[str, ProcessInterface]:
    """The cluster's worker objects by name (for dask-jobqueue, its Job objects)."""
    workers: Mapping[str, ProcessInterface] = cluster.workers
    return workers


def drop_refused(cluster: SpecCluster) -> list[str]:
    """Forget the refused jobs of ``cluster``; return what the scheduler said (its stderr).

    Each is reported once: the HPO driver stops at the first, and a caller that
    goes on does not hear of it again.
    """
    said = []
    for name, job in list(workers_of(cluster).items()):
        error = getattr(job, "submit_error", None)
        if error is not None:
            del cluster.workers[name]
            cluster.worker_spec.pop(name, None)
            text = str(error)
            said.append(text.split("stderr:", 1)[-1].strip() or text)
    return said


def interface_address(interface: str) -> str:
    """The IPv4 address of this host's network ``interface`` (such as ib0)."""
    from distributed.utils import get_ip_interface

    return str(get_ip_interface(interface))


__all__ = [
    "CHECKED_ON",
    "HTCondorCluster",
    "HTCondorJob",
    "JobQueueCluster",
    "KeepsSubmitError",
    "SLURMCluster",
    "SLURMJob",
    "dask_jobqueue",
    "drop_refused",
    "executable",
    "interface_address",
    "log_directory",
    "rewrite_worker_command",
    "submit_entries",
    "workers_of",
]
