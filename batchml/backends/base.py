"""The small interface every scheduler implements, and the workflow they share.

A backend does four scheduler-specific things: render a job (script and
submit description), hand it to the scheduler, report the state of many jobs
in one call, and cancel. Everything else (validating names, writing files
atomically, printing what will be submitted) lives here once. Dask clusters
for trials come from ``cluster()``, built on dask-jobqueue or LocalCluster.
"""

from __future__ import annotations

import copy
import enum
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from batchml.atomic import FILE_MODE, check_destination, write_atomic, write_new
from batchml.backends import tls_error_queue
from batchml.errors import BatchmlError, InvalidValue
from batchml.launch import launch_words
from batchml.resources import Resources
from batchml.site_values import check_env_name
from batchml.sites import Network, Site
from batchml.templates import render, template_path

if TYPE_CHECKING:
    from distributed import SpecCluster
    from distributed.security import Security

LOOPBACK = "127.0.0.1"


class SchedulerError(BatchmlError, RuntimeError):
    """A scheduler command failed; the message holds the command, its exit status and stderr."""


class UnknownJob(BatchmlError, LookupError):
    """A job id the scheduler has no record of (a typo, another machine's job): bad input."""

    exit_code = 2


class JobState(enum.Enum):
    """Where a job is, in words common to every scheduler."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    HELD = "held"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class JobSpec:
    """A plain batch job: ``command`` run once, or once per item of ``array_items``.

    With more than one GPU the command is started by torchrun, one process per
    GPU (``batchml.launch`` decides how). An array job's item reaches the
    command as $BATCHML_ARRAY_ITEM. The command runs in ``cwd`` when given (the
    folder `batchml submit` was typed in, so that ``python train.py`` finds its
    script as it would there; a node that cannot see it says so and stays in
    ``workdir``), else in ``workdir``, which holds the job's files.
    """

    name: str
    command: tuple[str, ...]
    resources: Resources
    workdir: Path
    template: str = "train"
    environment: Mapping[str, str] = field(default_factory=dict)
    array_items: tuple[str, ...] | None = None
    python: str = "python3"
    cwd: Path | None = None

    def __post_init__(self) -> None:
        if not self.command or not self.command[0]:
            raise InvalidValue("the job has no command", hint="give the program and its arguments")
        if not self.name or len(self.name) > 200 or "\x00" in self.name:
            raise InvalidValue(
                f"job name {self.name!r} is empty, too long or has a NUL byte",
                hint="use up to 200 characters",
            )
        if not self.python.strip():
            raise InvalidValue("the job's python is empty", hint="name a Python, such as python3")
        for key in self.environment:
            check_env_name(key)
        for item in self.array_items or ():
            if "\n" in item or "\x00" in item:
                raise InvalidValue(
                    f"array item {item!r} holds a newline or NUL",
                    hint="one item is one line: pass a file name or an index instead",
                )

    @property
    def launcher(self) -> str:
        return "torchrun" if self.resources.gpus > 1 else "direct"

    @property
    def launch_words(self) -> list[str]:
        """What job.sh execs: the command itself, or what follows torchrun's options."""
        return launch_words(self.command, self.python, torchrun=self.launcher == "torchrun")


@dataclass(frozen=True)
class RenderedJob:
    """Every file a submission writes (name -> text) and the one to hand to the scheduler."""

    files: dict[str, str]
    submit_file: str


@dataclass(frozen=True)
class JobInfo:
    """One row of `batchml jobs`."""

    id: str
    name: str
    state: JobState
    gpus: int = 0
    runtime: timedelta | None = None
    node: str | None = None
    reason: str | None = None  # why a job is held or failed, in the scheduler's words


class Backend(ABC):
    """One scheduler. Subclasses set ``scheduler`` and implement the abstract methods."""

    scheduler: ClassVar[str]

    def __init__(self, site: Site) -> None:
        if site.scheduler != self.scheduler:
            raise InvalidValue(
                f"site {site.name!r} uses {site.scheduler}, not {self.scheduler}",
                hint="pick the backend with backend_for(site)",
            )
        self.site = site

    def render(self, job: JobSpec) -> RenderedJob:
        """The job script (shared by all schedulers) and this scheduler's submit file."""
        script = render(
            "common/job.sh.j2",
            job=job,
            site=self.site,
            items_file="items.txt" if job.array_items else None,
            array_index_variable=self.array_index_variable,
        )
        files = {"job.sh": script}
        if job.array_items:
            files["items.txt"] = "".join(f"{item}\n" for item in job.array_items)
        submit_name, submit_text = self.render_submit(
            job, template_path(self.scheduler, job.template)
        )
        files[submit_name] = submit_text
        return RenderedJob(files=files, submit_file=submit_name)

    def submit(self, job: JobSpec) -> list[str]:
        """Write the rendered files into ``job.workdir`` and submit; returns the job ids."""
        rendered = self.render(job)
        self.lint(rendered, job)
        check_destination(job.workdir, "folder", "the job folder")
        job.workdir.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.files.items():
            mode = 0o775 if name.endswith(".sh") else FILE_MODE
            write_atomic(job.workdir / name, text.encode(), mode)
        return self.submit_rendered(job, job.workdir / rendered.submit_file)

    def lint(self, rendered: RenderedJob, job: JobSpec) -> None:  # noqa: B027 - optional hook
        """Check ``job``'s rendered submission before it is sent; SchedulerError if it is wrong."""

    @property
    @abstractmethod
    def array_index_variable(self) -> str:
        """The shell variable holding a job's index within its array."""

    @abstractmethod
    def render_submit(self, job: JobSpec, template: str) -> tuple[str, str]:
        """The submit file's name and text for ``job`` from ``template``."""

    @abstractmethod
    def submit_rendered(self, job: JobSpec, submit_file: Path) -> list[str]:
        """Hand a written submit file to the scheduler; the ids of the jobs it made."""

    @abstractmethod
    def status(self, ids: Sequence[str] | None = None) -> dict[str, JobInfo]:
        """State of these jobs (or all of the user's) from ONE scheduler query."""

    @abstractmethod
    def cancel(self, ids: Sequence[str]) -> list[str]:
        """Remove jobs from the queue, running or not; the ids that were still there.

        Every id is looked up first: one the scheduler has no record of raises
        UnknownJob and nothing is cancelled. A job that has ended is left alone.
        """

    @abstractmethod
    def cluster(self, resources: Resources, **options: Any) -> SpecCluster:
        """A dask cluster whose workers are jobs of this scheduler, each advertising GPU slots."""

    def check_cluster(self, resources: Resources, jobs: int | None) -> None:  # noqa: B027
        """Raise now what ``cluster`` would raise when it starts (before a study journal exists)."""


JOB_END_ENV = "BATCHML_JOB_END"  # epoch seconds at which the scheduler ends the worker job


def worker_prologue(site: Site, walltime: timedelta | None = None) -> list[str]:
    """Shell lines a dask worker job runs first: the site's environment, then batchml's needs.

    Workers start a process per trial (batchml.hpo), which a daemonic worker
    process may not do, so dask is told so through its environment. A worker
    job's log is where a user debugs it: INFO, whatever the submitting shell said
    (sbatch exports the driver's environment, and the CLI quiets dask there).
    With a ``walltime`` the job notes when it will be ended, taken when it
    starts (not when it was queued), so a worker can refuse a trial it cannot
    finish.
    """
    lines = [line for line in render("common/environment.sh.j2", site=site).splitlines() if line]
    lines += [
        "export DASK_DISTRIBUTED__WORKER__DAEMON=False",
        "export DASK_LOGGING__DISTRIBUTED=info",
    ]
    if walltime is not None:
        lines.append(f"export {JOB_END_ENV}=$(( $(date +%s) + {int(walltime.total_seconds())} ))")
    return lines


def worker_arguments(
    resources: Resources, network: Network, pools: Mapping[str, int] | None = None
) -> list[str]:
    """dask-worker options: the resources dask schedules by (the job's GPUs, plus ``pools``),
    the site's open port range (both ends), the TLS fix both worker and nanny load, and
    the worker's web server on loopback without its dashboard."""
    declared = {"GPU": resources.gpus} if resources.gpus else {}
    declared.update(pools or {})
    arguments = ["--preload", tls_error_queue.PRELOAD, "--preload-nanny", tls_error_queue.PRELOAD]
    # A worker's own web pages (its tasks, live call stacks) are for nobody else on the node.
    arguments += ["--no-dashboard", "--dashboard-address", f"{LOOPBACK}:0"]
    if declared:
        arguments += ["--resources", ",".join(f"{k}={v}" for k, v in declared.items())]
    if network.worker_ports:
        ports = f"{network.worker_ports[0]}:{network.worker_ports[1]}"
        arguments += ["--worker-port", ports, "--nanny-port", ports]
    return arguments


def web_server(network: Network, host: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scheduler's web server: its options, and the dask configuration to create it under.

    dask always starts one, and given ``dashboard_address=":0"`` it listens on every
    interface, unauthenticated: its pages show worker addresses, folders and live
    call stacks to anyone who can reach the host. With ``network.dashboard`` it
    listens on ``host`` (default: the site's interface, loopback when it names
    none; an ssh tunnel reaches it there) at ``network.dashboard_port`` (any free
    port when unset). Without, it listens on loopback and serves only /health.
    """
    if not network.dashboard:
        off = {"dashboard": False, "dashboard_address": f"{LOOPBACK}:0"}
        return off, {"distributed.scheduler.http.routes": ["distributed.http.health"]}
    if host is None:
        from distributed.utils import get_ip_interface

        host = get_ip_interface(network.interface) if network.interface else LOOPBACK
    return {"dashboard": True, "dashboard_address": f"{host}:{network.dashboard_port or 0}"}, {}


def worker_credentials(security: Security, folder: Path) -> Security:
    """``security`` with the workers' credentials as files in ``folder`` (a private one).

    Security.temporary() holds its keys in memory, and a worker process needs files.
    dask-jobqueue would write them itself, as temporary files deleted when collected:
    at exit, in no set order with the folder that holds them, each then says so
    on stderr.
    """
    with_files = copy.copy(security)
    for key, value in security.get_tls_config_for_role("worker").items():
        if value and "\n" in value:  # the PEM text itself, not a path
            path = folder / f"worker-{key}.pem"
            write_new(path, value.encode(), 0o600)
            setattr(
                with_files, "tls_ca_file" if key == "ca_file" else f"tls_worker_{key}", str(path)
            )
    return with_files


def worker_python() -> str:
    """The Python workers start with by default: the driver's own (same packages)."""
    return sys.executable
