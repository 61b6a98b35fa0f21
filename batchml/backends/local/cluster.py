"""Local dask workers as `dask worker` processes, started the way batch sites start theirs.

Each worker process gets a GPU slot of its own (its CUDA_VISIBLE_DEVICES, taken
from the driver's, or none), so trials placed with ``resources={"GPU": 1}``
never share a device. The cluster listens on loopback with TLS: on a shared
login node every other user can reach 127.0.0.1, and an open dask scheduler
runs their code as you.

Why not distributed's Nanny inside the driver (the first design): a Nanny starts
its worker with multiprocessing's spawn, which imports the driver's ``__main__``
again in the child. A script calling run_study without ``if __name__ ==
"__main__":`` (Optuna and Ray Tune need no guard, and users copy snippets) then
starts a second study inside every worker and the Nanny fails; a script read
from standard input cannot be imported again at all. A ``dask worker`` process
(``python -m distributed.cli.dask_worker``, the command dask-jobqueue writes into
every batch job) never imports the user's ``__main__``: the objective reaches it
cloudpickled (by value when it was defined in ``__main__``), and the modules
beside the user's script through the driver's ``sys.path``, handed over as
PYTHONPATH as spawn would hand it.

Why not dask-jobqueue's LocalCluster: it is a test double of the batch
clusters. It splits the job script into words (no environment, so no GPU slot
per worker), reads the worker's stderr until an INFO line that a quiet log never
prints and then stops reading it (a worker that logs more blocks on the full
pipe), and ends workers with SIGKILL of the first process only. Nor
distributed's SubprocessCluster (experimental): it returns before a worker has
connected, cannot tell a worker that failed to start, and leaves the workers in
the driver's process group.

Each worker runs in a session of its own, so Ctrl-C at the terminal reaches the
driver alone, which records the trials in flight before it stops the workers
(batchml.hpo.interrupts). Stopping a worker ends every process of its session
and what they started (nanny, worker, forkserver, trial processes, the commands
of command trials): SIGTERM, then SIGKILL after a grace period. Its TLS files
sit in a folder only the user can read, removed with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import dask
import psutil
from distributed import Scheduler, SpecCluster
from distributed.deploy.spec import ProcessInterface
from distributed.security import Security

from batchml._compat import tornado_tls
from batchml._compat.dask_jobqueue import workers_of
from batchml.backends import dask_log
from batchml.backends._worker import (
    LOOPBACK,
    gpu_slots,
    scheduler_port,
    web_server,
    worker_arguments,
    worker_credentials,
    worker_python,
)
from batchml.backends.base import ClusterOptions, SchedulerError
from batchml.config.resources import Resources
from batchml.config.site_schema import Site
from batchml.errors import InvalidValue

STOP_GRACE_S = 5.0  # after SIGTERM, the worker's processes have this long before SIGKILL
DEATH_TIMEOUT_S = 60  # a worker that cannot reach its scheduler (a killed driver) gives up
CONNECT_TIMEOUT_S = 120.0


def make_cluster(site: Site, resources: Resources, options: ClusterOptions) -> SpecCluster:
    """One worker per GPU slot (or ``options.jobs`` CPU workers), TLS on loopback; returns
    once every worker has connected."""
    security = options.credentials()
    if security is None:
        raise InvalidValue(
            "cluster option security=False: local workers always talk over TLS",
            hint="every user of this machine can reach its loopback: leave security at True",
        )
    slots = gpu_slots(resources.gpus, options.jobs)
    tornado_tls.install()  # for this driver's scheduler and client
    arguments = [
        "--host", LOOPBACK, "--nthreads", str(resources.cores),
        "--memory-limit", str(resources.memory), "--death-timeout", str(DEATH_TIMEOUT_S),
        *worker_arguments(resources, site.network, options.worker_resources),
    ]  # fmt: skip
    env = {"DASK_DISTRIBUTED__WORKER__DAEMON": "False", **dask_log.worker_environment()}
    worker = {"arguments": arguments, "security": security, "python": worker_python(options.python)}
    specs = {
        f"worker-{i}": {
            "cls": WorkerProcess,
            "options": {**worker, "env": {**env, "CUDA_VISIBLE_DEVICES": ",".join(slot)}},
        }
        for i, slot in enumerate(slots)
    }
    web, config = web_server(site.network, LOOPBACK)
    scheduler = {
        "cls": Scheduler,
        "options": {
            "host": LOOPBACK, "port": scheduler_port(site.network), "security": security, **web
        },
    }
    with dask.config.set(config):
        cluster = SpecCluster(
            workers=specs, scheduler=scheduler, security=security, name="batchml-local"
        )
    try:
        until_connected(cluster)
    except BaseException:
        cluster.close()
        raise
    return cluster


class WorkerProcess(ProcessInterface):
    """One ``dask worker`` (its nanny and worker process) in a session of its own.

    ``arguments`` are the dask-worker options besides the scheduler, name and TLS
    files; ``env`` is added to the driver's environment for this worker only;
    ``python`` runs it.
    """

    def __init__(
        self,
        scheduler: str,
        name: str,
        *,
        arguments: Sequence[str],
        env: Mapping[str, str],
        security: Security,
        python: str,
    ) -> None:
        super().__init__(scheduler, name)
        self.scheduler = scheduler
        self.name = name
        self.arguments = list(arguments)
        self.env = dict(env)
        self.security = security
        self.python = python
        self.process: asyncio.subprocess.Process | None = None
        self.tls_dir: str | None = None

    async def start(self) -> None:
        self.tls_dir = tempfile.mkdtemp(prefix="batchml-dask-tls-")  # mode 0700
        argv = [
            self.python, "-m", "distributed.cli.dask_worker", self.scheduler,
            "--name", str(self.name), "--protocol", "tls",
            *_tls_arguments(self.security, Path(self.tls_dir)), *self.arguments,
        ]  # fmt: skip
        self.process = await asyncio.create_subprocess_exec(
            *argv,
            env={**os.environ, "PYTHONPATH": _driver_path(), **self.env},
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        await super().start()

    @property
    def exited(self) -> int | None:
        """The exit status of the worker's first process, or None while it runs."""
        return None if self.process is None else self.process.returncode

    async def close(self) -> None:
        if self.process is not None:
            await self._end_session(self.process)
        if self.tls_dir is not None:
            shutil.rmtree(self.tls_dir, ignore_errors=True)
        await super().close()

    @staticmethod
    async def _end_session(leader: asyncio.subprocess.Process) -> None:
        """End every process of the worker's session, and every process they started.

        SIGTERM, then SIGKILL for what is left after ``STOP_GRACE_S``. Children in
        sessions of their own (a command trial's torchrun) are found through their
        parents before anything is signalled. The first process is waited for
        through asyncio, which reaps it (psutil would reap it behind asyncio's
        back). No executor: a cluster left open is closed at exit, when executors
        take no more work.
        """
        members = _session(leader.pid)
        _signal(members, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(leader.wait(), STOP_GRACE_S)
        others = [p for p in members if p.pid != leader.pid]
        for _ in range(20):  # a second more for the others, which exit after their parent
            if not [p for p in others if _alive(p)]:
                break
            await asyncio.sleep(0.05)
        _signal([p for p in others if _alive(p)] + _session(leader.pid), signal.SIGKILL)
        await leader.wait()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(processes: list[psutil.Process], number: signal.Signals) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(number)


def _session(leader: int) -> list[psutil.Process]:
    """The processes of the session ``leader`` started, and all their descendants."""
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(process.pid) == leader:
                members.append(process)
    found = {p.pid: p for p in members}
    for process in members:
        with contextlib.suppress(psutil.Error):
            found.update({child.pid: child for child in process.children(recursive=True)})
    return list(found.values())


def _tls_arguments(security: Security, folder: Path) -> list[str]:
    """dask-worker's --tls-* options, with credentials held in memory written to ``folder``."""
    files = worker_credentials(security, folder).get_tls_config_for_role("worker")
    options = {"ca_file": "--tls-ca-file", "cert": "--tls-cert", "key": "--tls-key"}
    return [word for key, flag in options.items() if files.get(key) for word in (flag, files[key])]


def _driver_path() -> str:
    """The driver's sys.path as PYTHONPATH: modules beside the user's script import in workers."""
    entries = [entry or os.getcwd() for entry in sys.path]
    return os.pathsep.join(dict.fromkeys(e for e in entries if os.path.isdir(e)))


def until_connected(cluster: SpecCluster, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Return once every worker of ``cluster`` has connected; raise if one exits first."""
    deadline = time.monotonic() + timeout_s
    while len(cluster.scheduler_info.get("workers", {})) < len(workers_of(cluster)):
        for name, worker in workers_of(cluster).items():
            if isinstance(worker, WorkerProcess) and worker.exited is not None:
                raise SchedulerError(
                    f"local dask worker {name} exited with status {worker.exited} "
                    "before it connected",
                    hint="its output is above; `batchml -v` (or DASK_LOGGING__DISTRIBUTED=info) "
                    "shows dask's log",
                )
        if time.monotonic() > deadline:
            raise SchedulerError(
                f"local dask workers did not connect within {timeout_s:.0f} s",
                hint="the machine may be overloaded; fewer workers (max_jobs) start faster",
            )
        time.sleep(0.05)
