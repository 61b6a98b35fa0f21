"""Slurm through its command line: `sbatch --parsable`, one `squeue --json` per cycle, `scancel`.

pyslurm only works with the one Slurm release it was built for (PyPI has 25.11
only), so the CLI is the path that works at every site; every command goes
through ``run_command``. Resources become sbatch options in one place
(``resources.slurm_directives``), shared by plain jobs and dask workers, so a
dask-jobqueue default (a short walltime, a --mem beside --mem-per-gpu) can
never slip in. Reading squeue and sacct JSON is in status.py, dask clusters of
worker jobs in cluster.py.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchml.backends.base import (
    Backend,
    ClusterOptions,
    JobInfo,
    JobSpec,
    JobState,
    SchedulerError,
    UnknownJob,
)
from batchml.backends.commands import run_command
from batchml.backends.slurm.status import sacct_rows, squeue_rows
from batchml.config.resources import Resources, slurm_directives
from batchml.config.site_schema import Site
from batchml.config.templates import render
from batchml.config.units import is_count
from batchml.errors import InvalidValue

if TYPE_CHECKING:
    from batchml._compat.dask_jobqueue import SLURMCluster

log = logging.getLogger(__name__)

SUBMIT_FILE = "job.sbatch"
POLL_FAILURES_TOLERATED = 3


class SlurmBackend(Backend):
    """Plain jobs and dask clusters on Slurm. Not thread-safe: one watcher calls ``status``."""

    scheduler = "slurm"

    def __init__(self, site: Site, *, failures_tolerated: int = POLL_FAILURES_TOLERATED) -> None:
        super().__init__(site)
        self.failures_tolerated = failures_tolerated
        self._failures = 0
        self._last_seen: dict[str, JobInfo] = {}

    @property
    def array_index_variable(self) -> str:
        return "SLURM_ARRAY_TASK_ID"

    def render_submit(self, job: JobSpec, template: str) -> tuple[str, str]:
        """The batch script: resource directives and --array only; user text stays out of it."""
        text = render(
            template,
            job=job,
            directives=slurm_directives(job.resources, self.site),
            items=len(job.array_items or ()),
            script=str(job.workdir.absolute() / "job.sh"),
        )
        return SUBMIT_FILE, text

    def submit_command(self, job: JobSpec, submit_file: Path) -> list[str]:
        """The sbatch argv: name, folder and log paths as single arguments, never parsed by a shell.

        In #SBATCH lines a space or newline in the job name would end the value; here
        it cannot. ``%`` in the folder is doubled because sbatch expands ``%j`` etc.
        """
        workdir = submit_file.parent.absolute()
        logs = f"{str(workdir).replace('%', '%%')}/slurm-{'%A_%a' if job.array_items else '%j'}"
        return [
            "sbatch",
            "--parsable",
            f"--job-name={job.name}",
            f"--chdir={workdir}",
            f"--output={logs}.out",
            f"--error={logs}.err",
            str(submit_file.absolute()),
        ]

    def submit_rendered(self, job: JobSpec, submit_file: Path) -> list[str]:
        """Submit; an array of N items gives the ids ``ID_0`` ... ``ID_{N-1}``."""
        job_id = parse_sbatch_output(run_command(self.submit_command(job, submit_file)))
        if job.array_items:
            return [f"{job_id}_{index}" for index in range(len(job.array_items))]
        return [job_id]

    def status(self, ids: Sequence[str] | None = None) -> dict[str, JobInfo]:
        """One squeue call for all jobs; sacct only for ids that left the queue, with accounting.

        A failed squeue answers with the last rows seen, up to ``failures_tolerated``
        times in a row (slurmctld restarts take seconds); then it raises.
        """
        if ids is not None:
            ids = [_check_job_id(job_id) for job_id in ids]  # a typo fails before squeue runs
        try:
            payload = _squeue()
        except SchedulerError as exc:
            return self._last_rows(ids, exc)
        self._failures = 0
        rows = {row.id: row for row in squeue_rows(payload, user_id=None if ids else os.getuid())}
        if ids is not None:
            missing = [i for i in ids if i not in rows]
            rows = {i: rows[i] for i in ids if i in rows}
            rows.update(self._left_queue(missing))
        self._last_seen.update(rows)
        return rows

    def cancel(self, ids: Sequence[str]) -> list[str]:
        """scancel the jobs still queued (an array task as ``ID_TASK``, a whole array as ``ID``).

        scancel exits 0 without a word for an id Slurm does not know, so the ids
        are looked up first: in squeue, then (where accounting is on) in sacct.
        """
        wanted = list(dict.fromkeys(_check_job_id(job_id) for job_id in ids))
        if not wanted:
            return []
        rows = list(squeue_rows(_squeue()))
        active = {row.id for row in rows if not row.state.finished}
        active |= {job_id.partition("_")[0] for job_id in active}  # an array with a task left
        queued = {row.id for row in rows} | {row.id.partition("_")[0] for row in rows}
        missing = [job_id for job_id in wanted if job_id not in queued]
        ended = self._left_queue(missing)
        unknown = [job_id for job_id in missing if ended[job_id].state is JobState.UNKNOWN]
        if unknown:
            raise UnknownJob(
                f"Slurm has no job {', '.join(unknown)}: squeue does not list it"
                + (" and sacct has no record of it" if self.has_accounting else ""),
                hint=f"your jobs are listed by `batchml jobs --site {self.site.name}`",
            )
        stopping = [job_id for job_id in wanted if job_id in active]
        if stopping:
            run_command(["scancel", *stopping])
        return stopping

    def start_cluster(self, resources: Resources, options: ClusterOptions) -> SLURMCluster:
        """A SLURMCluster whose workers each are one job with ``resources`` (see cluster.py)."""
        from batchml.backends.slurm.cluster import make_cluster

        return make_cluster(self.site, resources, options)

    def _last_rows(self, ids: Sequence[str] | None, error: Exception) -> dict[str, JobInfo]:
        self._failures += 1
        if self._failures > self.failures_tolerated:
            raise SchedulerError(
                f"squeue failed {self._failures} times in a row; last error: {error}",
                hint="check that slurmctld is up (scontrol ping) and SLURM_CONF is right",
            ) from None
        log.warning("squeue failed (%d in a row), last state shown: %s", self._failures, error)
        wanted = self._last_seen.keys() if ids is None else ids
        return {i: self._last_seen[i] for i in wanted if i in self._last_seen}

    def _left_queue(self, ids: list[str]) -> dict[str, JobInfo]:
        """Rows for jobs squeue no longer lists: from sacct, or UNKNOWN without accounting."""
        if not ids:
            return {}
        rows: dict[str, JobInfo] = {}
        if self.has_accounting:
            try:
                answer = run_command(["sacct", "--json", "--jobs", ",".join(ids)])
                rows = {r.id: r for r in sacct_rows(json.loads(answer)) if r.id in ids}
            except (SchedulerError, ValueError) as exc:
                log.warning("sacct failed, states of %d finished jobs unknown: %s", len(ids), exc)
        for job_id in ids:
            if job_id not in rows:
                name = self._last_seen[job_id].name if job_id in self._last_seen else ""
                rows[job_id] = JobInfo(id=job_id, name=name, state=JobState.UNKNOWN)
        return rows

    @cached_property
    def has_accounting(self) -> bool:
        """Whether sacct can answer: asked once, since sacct fails where accounting is off."""
        try:
            config = run_command(["scontrol", "show", "config"])
        except SchedulerError as exc:
            log.warning("cannot read the Slurm configuration, not using sacct: %s", exc)
            return False
        for line in config.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "AccountingStorageType":
                return value.strip() not in ("", "accounting_storage/none")
        return False


def _squeue() -> Any:
    """Every job in the controller's memory, from `squeue --json`."""
    answer = run_command(["squeue", "--json"])
    try:
        return json.loads(answer)
    except ValueError:
        raise SchedulerError(f"squeue --json printed no JSON: {answer[:200]!r}") from None


def _check_job_id(job_id: str) -> str:
    if not re.fullmatch(r"\d+(_\d+)?", job_id):
        raise InvalidValue(
            f"{job_id!r} is not a Slurm job id",
            hint="write it as ID, or ID_TASK for one task of an array (see `batchml jobs`)",
        )
    return job_id


def parse_sbatch_output(text: str) -> str:
    """The job id from `sbatch --parsable`, which prints ``ID`` or ``ID;CLUSTER``."""
    job_id = text.strip().split(";")[0]
    if not is_count(job_id):
        raise SchedulerError(f"sbatch --parsable printed {text.strip()!r}, not a job id")
    return job_id
