"""HTCondor: plain jobs through the htcondor2 bindings, dask workers through dask-jobqueue.

Submission, status and removal talk to the schedd through the bindings, so no
``condor_q`` output is ever parsed and the status of any number of jobs costs
one schedd query per polling cycle (plus one history query for the jobs that
left the queue since). Submit descriptions are rendered from
``submit_templates/htcondor/`` and checked by ``lint.py`` before they are
sent. dask clusters are built in ``cluster.py``.
"""

from __future__ import annotations

import getpass
import logging
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import classad2
import htcondor2

from batchml.backends.base import (
    Backend,
    ClusterOptions,
    JobInfo,
    JobSpec,
    JobState,
    RenderedJob,
    SchedulerError,
    UnknownJob,
)
from batchml.backends.htcondor.lint import parse_submit
from batchml.config.resources import Resources, htcondor_submit_entries
from batchml.config.site_schema import HTCondorSettings
from batchml.config.submit_language import submit_label, submit_string, submit_value
from batchml.config.templates import classad_string, render
from batchml.config.units import is_count
from batchml.errors import InvalidValue

if TYPE_CHECKING:
    from batchml._compat.dask_jobqueue import HTCondorCluster

log = logging.getLogger(__name__)

# The job ClassAd's JobStatus codes. Completed splits into COMPLETED and FAILED by exit status.
_STATES = {
    1: JobState.PENDING,  # Idle
    2: JobState.RUNNING,
    3: JobState.CANCELLED,  # Removed
    4: JobState.COMPLETED,
    5: JobState.HELD,
    6: JobState.RUNNING,  # Transferring output
    7: JobState.PENDING,  # Suspended: not running, will run again
}
PROJECTION = [
    "ClusterId",
    "ProcId",
    "JobStatus",
    "JobBatchName",
    "RequestGpus",
    "RemoteHost",
    "LastRemoteHost",
    "JobCurrentStartDate",
    "RemoteWallClockTime",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "HoldReason",
    "HoldReasonCode",
    "RemoveReason",
]
CREDENTIAL_ROOTS = ("/eos", "/afs")
# A spooled job is held with this code until its input files have arrived: it is not stuck.
SPOOLING_INPUT = 16


class HTCondorBackend(Backend):
    """One HTCondor site: its schedd, its submit conventions (flavours, WantOS, spool)."""

    scheduler = "htcondor"

    @property
    def array_index_variable(self) -> str:
        """Set per job from $(ProcId) by the description's ``environment`` line."""
        return "BATCHML_ARRAY_TASK"

    @property
    def settings(self) -> HTCondorSettings:
        return self.site.htcondor or HTCondorSettings()

    def render_submit(self, job: JobSpec, template: str) -> tuple[str, str]:
        """An array is ``queue N`` (items stay in items.txt, never in the submit language)."""
        text = render(
            template,
            job=job,
            universe="container" if self._docker_image else "vanilla",
            workdir=_workdir(job),
            spool=self.settings.spool,
            items=len(job.array_items or ()),
            array_index_variable=self.array_index_variable,
            batch_name=submit_label(job.name),
            entries=self.submit_entries(job.resources, [*_folders(job), *job.command]),
        )
        return "job.sub", text

    def lint(self, rendered: RenderedJob, job: JobSpec) -> None:
        text = rendered.files[rendered.submit_file]
        parse_submit(text, rendered.submit_file, executable=f"{_workdir(job)}/job.sh")

    def submit_entries(self, resources: Resources, job_paths: Iterable[str] = ()) -> dict[str, str]:
        """What the request and the site add to any description: plain jobs and dask workers."""
        entries = htcondor_submit_entries(resources, self.site)
        settings = self.settings
        if settings.want_os:
            entries["MY.WantOS"] = submit_string(settings.want_os)
        container = self.site.container
        if self._docker_image:
            entries["container_image"] = submit_value(self._docker_image)
        elif container.image:
            entries["MY.SingularityImage"] = submit_string(container.image)
        if self.needs_credential(job_paths):
            entries["MY.SendCredential"] = "true"
        if settings.accounting_group:
            entries["accounting_group"] = submit_value(settings.accounting_group)
        entries.update((k, submit_value(v)) for k, v in settings.extra_attributes.items())
        return entries

    def needs_credential(self, job_paths: Iterable[str] = ()) -> bool:
        """Whether jobs get the user's Kerberos credential (MY.SendCredential).

        Only jobs that read AFS or EOS need it, and forwarding a credential
        nobody uses widens what a compromised node can do.
        """
        if self.settings.send_credential != "auto":
            return self.settings.send_credential == "always"
        paths = self.site.paths
        candidates = [*job_paths, paths.shared_dir or "", paths.registry_root, paths.log_dir]
        return self.site.xrootd.auth == "krb5" and any(map(_on_afs_or_eos, candidates))

    def submit_rendered(self, job: JobSpec, submit_file: Path) -> list[str]:
        description = parse_submit(
            submit_file.read_text(), str(submit_file), executable=f"{_workdir(job)}/job.sh"
        )
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = self._send(description)
        except (htcondor2.HTCondorException, RuntimeError, ValueError) as exc:
            raise SchedulerError(
                f"the schedd refused {submit_file}: {exc}",
                hint="run `condor_q -better-analyze` or check the site's htcondor settings",
            ) from None
        for warning in caught:
            log.warning("HTCondor, submitting %s: %s", submit_file, warning.message)
        first, cluster = result.first_proc(), result.cluster()
        return [f"{cluster}.{proc}" for proc in range(first, first + result.num_procs())]

    def status(self, ids: Sequence[str] | None = None) -> dict[str, JobInfo]:
        """One queue query for all ``ids``; one history query only for those no longer queued."""
        if ids is None:
            owner = classad_string(getpass.getuser())
            return {info.id: info for info in self._query(f"Owner == {owner}")}
        wanted = list(dict.fromkeys(_check_job_id(job_id) for job_id in ids))
        queued, ended = self._located(wanted)
        found = {**queued, **ended}
        return {
            job_id: found.get(job_id) or JobInfo(job_id, "", JobState.UNKNOWN) for job_id in wanted
        }

    def cancel(self, ids: Sequence[str]) -> list[str]:
        """Remove the jobs still queued; one neither queued nor in the history is unknown.

        (The schedd answers a removal of an unknown id with a count, not an error.)
        """
        wanted = list(dict.fromkeys(_check_job_id(job_id) for job_id in ids))
        queued, ended = self._located(wanted)
        unknown = [job_id for job_id in wanted if job_id not in queued and job_id not in ended]
        if unknown:
            raise UnknownJob(
                f"the HTCondor schedd {self.settings.schedd or '(local)'} has no job "
                f"{', '.join(unknown)}: not in its queue, not in its history",
                hint=f"your jobs are listed by `batchml jobs --site {self.site.name}`",
            )
        job_ids = [i for i in wanted if i in queued and not queued[i].state.finished]
        if not job_ids:
            return []
        try:
            result = self._schedd.act(
                htcondor2.JobAction.Remove, job_ids, reason="removed with batchml"
            )
        except htcondor2.HTCondorException as exc:
            raise SchedulerError(f"the schedd did not remove {', '.join(job_ids)}: {exc}") from None
        refused = {key: int(result.get(key, 0)) for key in ("TotalPermissionDenied", "TotalError")}
        if any(refused.values()):
            raise SchedulerError(
                f"the schedd refused to remove some of {', '.join(job_ids)}: {refused}",
                hint="only the owner of a job can remove it",
            )
        return job_ids

    def check_cluster(self, resources: Resources, jobs: int | None) -> None:
        self.submit_entries(resources)  # a walltime no job flavour allows, for one

    def start_cluster(self, resources: Resources, options: ClusterOptions) -> HTCondorCluster:
        """HTCondorCluster of workers that advertise GPU=N (see cluster.py)."""
        from batchml.backends.htcondor.cluster import make_cluster

        entries = self.submit_entries(resources)
        entries.update((k, submit_value(v)) for k, v in self.settings.worker_attributes.items())
        return make_cluster(self.site, resources, entries, options)

    def _send(self, description: htcondor2.Submit) -> htcondor2.SubmitResult:
        """Submit, and with spool upload the input files; a half-spooled cluster is removed.

        Spooled jobs wait on hold until their files arrive, so a failed upload
        would otherwise leave held jobs behind.
        """
        result = self._schedd.submit(description, spool=self.settings.spool)
        if self.settings.spool:
            try:
                self._schedd.spool(result)
            except BaseException:
                self._schedd.act(htcondor2.JobAction.Remove, f"ClusterId == {result.cluster()}")
                raise
        return result

    @property
    def _docker_image(self) -> str | None:
        container = self.site.container
        return container.image if container.image and container.runtime == "docker" else None

    @cached_property
    def _schedd(self) -> htcondor2.Schedd:
        name = self.settings.schedd
        try:
            if name is None:
                return htcondor2.Schedd()
            ad = htcondor2.Collector().locate(htcondor2.DaemonType.Schedd, name)
            return htcondor2.Schedd(ad)
        except (htcondor2.HTCondorException, RuntimeError, ValueError) as exc:
            raise SchedulerError(
                f"cannot reach the HTCondor schedd {name or '(local)'}: {exc}",
                hint="check CONDOR_CONFIG and that this is a submit host of the pool",
            ) from None

    def _located(self, job_ids: Sequence[str]) -> tuple[dict[str, JobInfo], dict[str, JobInfo]]:
        """The jobs still queued, and those found only in the history (queried for the rest)."""
        if not job_ids:
            return {}, {}
        queued = {info.id: info for info in self._query(ids_constraint(job_ids))}
        gone = [job_id for job_id in job_ids if job_id not in queued]
        ended = {info.id: info for info in self._history(gone)} if gone else {}
        return queued, ended

    def _query(self, constraint: str) -> list[JobInfo]:
        try:
            ads = self._schedd.query(constraint, PROJECTION)
        except (htcondor2.HTCondorException, RuntimeError) as exc:
            raise SchedulerError(f"the schedd query {constraint!r} failed: {exc}") from None
        return [job_info(ad) for ad in ads]

    def _history(self, job_ids: Sequence[str]) -> list[JobInfo]:
        try:
            ads = self._schedd.history(ids_constraint(job_ids), PROJECTION, match=len(job_ids))
        except (htcondor2.HTCondorException, RuntimeError) as exc:
            log.warning("HTCondor history is not available (%s): jobs reported unknown", exc)
            return []
        return [job_info(ad) for ad in ads]


def ids_constraint(job_ids: Iterable[str]) -> str:
    """A constraint matching exactly these ``cluster.proc`` ids, one clause per cluster."""
    procs: dict[str, list[str]] = defaultdict(list)
    for job_id in job_ids:
        cluster, _, proc = job_id.partition(".")
        procs[cluster].append(proc)
    return " || ".join(
        f"(ClusterId == {cluster} && member(ProcId, {{{', '.join(numbers)}}}))"
        for cluster, numbers in procs.items()
    )


def job_info(ad: classad2.ClassAd) -> JobInfo:
    """A queue or history ad as the row `batchml jobs` shows."""
    state = _STATES.get(_int(ad, "JobStatus"), JobState.UNKNOWN)
    if state is JobState.HELD and _int(ad, "HoldReasonCode") == SPOOLING_INPUT:
        state = JobState.PENDING
    reason = None
    if state is JobState.COMPLETED and (ad.get("ExitBySignal") or _int(ad, "ExitCode")):
        state = JobState.FAILED
        signal = _int(ad, "ExitSignal")
        reason = f"killed by signal {signal}" if signal else f"exit code {_int(ad, 'ExitCode')}"
    elif state is JobState.HELD:
        reason = str(ad.get("HoldReason") or "held, no reason given")
    elif state is JobState.CANCELLED:
        reason = str(ad.get("RemoveReason") or "removed, no reason given")
    host = ad.get("RemoteHost") or ad.get("LastRemoteHost")
    return JobInfo(
        id=f"{_int(ad, 'ClusterId')}.{_int(ad, 'ProcId')}",
        name=str(ad.get("JobBatchName", "")),
        state=state,
        gpus=_int(ad, "RequestGpus"),
        runtime=_runtime(ad, state),
        node=str(host).rpartition("@")[2] if host else None,
        reason=reason,
    )


def _runtime(ad: classad2.ClassAd, state: JobState) -> timedelta | None:
    started = _int(ad, "JobCurrentStartDate")
    if state is JobState.RUNNING and started:
        return timedelta(seconds=max(0, int(time.time()) - started))
    wall = _int(ad, "RemoteWallClockTime")
    return timedelta(seconds=wall) if wall else None


def _int(ad: classad2.ClassAd, key: str) -> int:
    """An integer attribute; 0 when it is missing or an expression that is not a number."""
    value = ad.get(key, 0)
    return int(value) if isinstance(value, (int, float)) else 0


def _check_job_id(job_id: str) -> str:
    cluster, dot, proc = str(job_id).partition(".")
    if not (dot and is_count(cluster) and is_count(proc)):
        raise InvalidValue(
            f"{job_id!r} is not an HTCondor job id",
            hint="write it as CLUSTER.PROC, such as 1234.0 (see `batchml jobs`)",
        )
    return f"{int(cluster)}.{int(proc)}"


def _workdir(job: JobSpec) -> str:
    """The job's folder as the description writes it, refused where HTCondor would read another.

    condor_submit rewrites backslashes in paths (``/a/\\b`` becomes ``/a/b``), and
    a comma splits the list of files to transfer (items.txt of an array).
    """
    folder = str(job.workdir)
    if "\\" in folder or (job.array_items and "," in folder):
        raise InvalidValue(
            f"job folder {folder!r} holds a backslash or (for an array) a comma, which "
            "HTCondor reads as something else in a path",
            hint="choose a folder without '\\' or ',' (--workdir)",
        )
    return submit_value(folder)


def _on_afs_or_eos(path: str) -> bool:
    return any(path == root or path.startswith(root + "/") for root in CREDENTIAL_ROOTS)


def _folders(job: JobSpec) -> list[str]:
    """The folders a job reads: its files' and, when given, the one its command runs in."""
    return [str(folder) for folder in (job.workdir, job.cwd) if folder is not None]
