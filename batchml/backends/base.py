"""The small interface every scheduler implements, and the workflow they share.

A backend does four scheduler-specific things: render a job (script and
submit description), hand it to the scheduler, report the state of many jobs
in one call, and cancel. Everything else (validating names, writing files
atomically, printing what will be submitted) lives here once. Dask clusters
for trials come from ``cluster()``, built on dask-jobqueue or LocalCluster.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from batchml._fs import FILE_MODE, check_destination, write_atomic
from batchml.backends.launch import launch_words
from batchml.config.resources import Resources
from batchml.config.site_schema import Site
from batchml.config.site_values import check_env_name
from batchml.config.templates import render, template_path
from batchml.errors import BatchmlError, InvalidValue

if TYPE_CHECKING:
    from distributed import SpecCluster
    from distributed.security import Security


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
    GPU (``batchml.backends.launch`` decides how). An array job's item reaches the
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


@dataclass(frozen=True)
class ClusterOptions:
    """What a caller chooses for a dask cluster besides the resources, alike on every backend.

    Checked when made: a value of the wrong kind is named, and ``from_keywords``
    refuses a name that is no field, listing the fields, so a misspelt option
    never silently does nothing.
    """

    jobs: int | None = None
    """Worker jobs submitted at once (``cluster.scale`` adds more). Locally, worker
    processes: by default one per GPU slot, or one without GPUs."""
    python: str | None = None
    """The workers' Python; by default the driver's own, which has the same packages."""
    security: Security | bool = True
    """True: new TLS credentials for this cluster only; a Security: those; False: plain
    TCP, for batch sites only (locally, every user of the machine reaches its loopback)."""
    log_directory: str | os.PathLike[str] | None = None
    """Where worker jobs write their logs; by default the site's log_dir. Local workers
    write to the driver's terminal."""
    worker_resources: Mapping[str, float] = field(default_factory=dict)
    """dask resources each worker declares besides its GPUs, such as ``{"TRIAL": 2}``."""

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise InvalidValue(
                f"cluster option {problem}",
                hint="jobs: a whole number; python: a path; security: True, False or a "
                "Security; log_directory: a folder; worker_resources: {name: amount}",
            )

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any]) -> ClusterOptions:
        """The options named in ``keywords``; InvalidValue for a name that is not an option."""
        unknown = sorted(set(keywords) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InvalidValue(f"unknown cluster option {unknown[0]!r}", hint=cls._hint())
        return cls(**keywords)

    def credentials(self) -> Security | None:
        """The cluster's TLS credentials: new ones for ``security=True``, None for plain TCP."""
        if self.security is True:
            from distributed.security import Security

            return Security.temporary()
        return self.security or None

    def _problem(self) -> str | None:
        from distributed.security import Security

        jobs, resources = self.jobs, self.worker_resources
        if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 0):
            return f"jobs={jobs!r} is not a number of jobs (0 or more)"
        if self.python is not None and not (isinstance(self.python, str) and self.python):
            return f"python={self.python!r} is not the path of a Python"
        if not isinstance(self.security, (bool, Security)):
            return f"security={self.security!r} is neither True, False nor a Security"
        folder = self.log_directory
        if folder is not None and not (isinstance(folder, (str, os.PathLike)) and str(folder)):
            return f"log_directory={folder!r} is not a folder"
        if not isinstance(resources, Mapping) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            for k, v in resources.items()
        ):
            return f"worker_resources={resources!r} is not a mapping of names to amounts"
        return None

    @classmethod
    def _hint(cls) -> str:
        return f"use one of {', '.join(f.name for f in dataclasses.fields(cls))}"


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

    def cluster(
        self, resources: Resources, options: ClusterOptions | None = None, **keywords: Any
    ) -> SpecCluster:
        """A dask cluster whose workers are jobs of this scheduler, each advertising its GPUs.

        The options come as a ClusterOptions or as its fields by keyword, checked
        here once for every backend.
        """
        if options is not None and keywords:
            raise InvalidValue(
                f"cluster options given twice: as ClusterOptions and as {', '.join(keywords)}",
                hint="pass either a ClusterOptions or its fields by keyword",
            )
        return self.start_cluster(resources, options or ClusterOptions.from_keywords(keywords))

    @abstractmethod
    def start_cluster(self, resources: Resources, options: ClusterOptions) -> SpecCluster:
        """The cluster ``cluster()`` returns, from options already checked."""

    def check_cluster(self, resources: Resources, jobs: int | None) -> None:  # noqa: B027
        """Raise now what ``cluster`` would raise when it starts (before a study journal exists)."""


JOB_END_ENV = "BATCHML_JOB_END"  # epoch seconds at which the scheduler ends the worker job
