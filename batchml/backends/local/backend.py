"""The embedded default: no batch system, this machine's cores and GPUs.

Plain jobs run the same job script as on a batch system, detached, so a
template can be tried here first. Workers are ``dask worker`` processes, one
per GPU slot (cluster.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from batchml._fs import write_atomic
from batchml.backends._worker import expand_path, gpu_slots
from batchml.backends.base import (
    Backend,
    ClusterOptions,
    JobInfo,
    JobSpec,
    JobState,
    UnknownJob,
)
from batchml.config.resources import Resources
from batchml.config.site_schema import Site
from batchml.config.templates import render
from batchml.config.units import is_count
from batchml.errors import InvalidValue

if TYPE_CHECKING:
    from distributed import SpecCluster

_EXIT_FILE = "exit-status"
_CANCELLED = "cancelled"
_NAME_FILE = "job-name"
_RUNNER_FILE = "runner"  # the runner's identity: a reused process id is never taken for it


class LocalBackend(Backend):
    """This machine. Job ids are the process ids of detached job runners.

    A process id is reused once its process has ended, so the id alone does not
    say the job still runs: each job records its runner's identity (the boot and
    the start time the kernel gives the process), and only a process that still
    has it counts as the job, for `jobs` and above all for `cancel`, which signals
    its whole process group.
    """

    scheduler = "local"

    @property
    def array_index_variable(self) -> str:
        return "BATCHML_ARRAY_TASK"

    def render_submit(self, job: JobSpec, template: str) -> tuple[str, str]:
        tasks = len(job.array_items) if job.array_items else 0
        return "run.sh", render(template, job=job, tasks=tasks, exit_file=_EXIT_FILE)

    def __init__(self, site: Site) -> None:
        super().__init__(site)
        self.records = Path(expand_path(site.paths.log_dir)) / "local-jobs"

    def submit_rendered(self, job: JobSpec, submit_file: Path) -> list[str]:
        (job.workdir / _EXIT_FILE).unlink(missing_ok=True)
        write_atomic(job.workdir / _NAME_FILE, job.name.encode())
        with open(job.workdir / "job.log", "ab") as log:
            process = subprocess.Popen(
                [str(submit_file)],
                cwd=job.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the driver; cancel kills the whole group
            )
        write_atomic(job.workdir / _RUNNER_FILE, (identity(process.pid) or "").encode())
        # A link per job, so `batchml jobs` in another process finds it again.
        self.records.mkdir(parents=True, exist_ok=True)
        link = self.records / str(process.pid)
        link.unlink(missing_ok=True)
        link.symlink_to(job.workdir.resolve())
        return [str(process.pid)]

    def status(self, ids: Sequence[str] | None = None) -> dict[str, JobInfo]:
        if ids is None:
            ids = sorted(p.name for p in self.records.iterdir()) if self.records.is_dir() else []
        for job_id in ids:
            if not is_count(job_id):  # never a path: '../x' would read another folder's link
                listing = f"batchml jobs --site {self.site.name}"
                raise UnknownJob(
                    f"{job_id!r} is not a local job id",
                    hint=f"local job ids are process ids (see `{listing}`)",
                )
        return {job_id: self._info(job_id) for job_id in ids}

    def _info(self, job_id: str) -> JobInfo:
        link = self.records / job_id
        workdir = link.resolve() if link.is_symlink() else None
        name_file = workdir / _NAME_FILE if workdir else None
        name = name_file.read_text() if name_file and name_file.exists() else "?"
        if workdir is not None and _runs(int(job_id), workdir):
            return JobInfo(job_id, name, JobState.RUNNING, node="localhost")
        exit_file = workdir / _EXIT_FILE if workdir else None
        if exit_file is None or not exit_file.exists():
            return JobInfo(job_id, name, JobState.UNKNOWN)
        code = exit_file.read_text().strip()
        states = {"0": JobState.COMPLETED, _CANCELLED: JobState.CANCELLED}
        state = states.get(code, JobState.FAILED)
        return JobInfo(job_id, name, state, node="localhost")

    def cancel(self, ids: Sequence[str]) -> list[str]:
        """SIGTERM to the process group of each job whose runner still runs."""
        workdirs = {job_id: self._workdir(job_id) for job_id in ids}  # all known, or none cancelled
        stopped = []
        for job_id, workdir in workdirs.items():
            if not _runs(int(job_id), workdir):
                continue
            try:
                os.killpg(int(job_id), signal.SIGTERM)
            except ProcessLookupError:
                continue
            # The runner, killed, may not write its exit status: say why it ended.
            write_atomic(workdir / _EXIT_FILE, _CANCELLED.encode())
            stopped.append(job_id)
        return stopped

    def _workdir(self, job_id: str) -> Path:
        """The folder of a job this backend started; UnknownJob for any other id."""
        link = self.records / job_id
        if not is_count(job_id) or not link.is_symlink():
            raise UnknownJob(
                f"no local job {job_id!r}: batchml started none with that id on this machine",
                hint=f"its jobs are listed by `batchml jobs --site {self.site.name}`",
            )
        return link.resolve()

    def check_cluster(self, resources: Resources, jobs: int | None) -> None:
        if jobs is not None and jobs < 1:
            raise InvalidValue(
                f"jobs={jobs}: a local cluster needs one worker or more", hint="ask for 1 or more"
            )
        gpu_slots(resources.gpus, jobs)

    def start_cluster(self, resources: Resources, options: ClusterOptions) -> SpecCluster:
        """Worker processes here, one per GPU slot (see cluster.py)."""
        from batchml.backends.local.cluster import make_cluster

        self.check_cluster(resources, options.jobs)
        return make_cluster(self.site, resources, options)


def identity(pid: int) -> str | None:
    """The boot and the start time of process ``pid`` (None: no such process).

    Neither changes while the process lives (not even through exec), and no
    later process with the same id has both.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name, in parentheses, may hold spaces
    return f"{boot} {fields[19]}"  # field 22 of proc(5): starttime


def _runs(pid: int, workdir: Path) -> bool:
    """Whether the runner this job started is alive: the process ``pid`` still has its identity."""
    runner = workdir / _RUNNER_FILE
    recorded = runner.read_text() if runner.is_file() else ""
    return bool(recorded) and identity(pid) == recorded and _running(pid)


def _running(pid: int) -> bool:
    """True for a live process; a finished child is reaped here (it would stay a zombie)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: look at /proc instead
        status = Path(f"/proc/{pid}/status")
        return status.exists() and "\nState:\tZ" not in status.read_text()
    return done == 0
