"""HTCondor benchmark on the local test pool: submit-to-running latency, status-polling cost.

- submit-to-running: a 1-GPU job rendered and submitted by HTCondorBackend,
  then polled with ``status`` every 50 ms until it runs (median of 5);
- polling 200 queued jobs (submitted on hold, so they stay queued): schedd
  queries and seconds per ``status`` cycle against a per-job baseline (one
  query per job, what a naive ``condor_q ID`` loop does), as a ratio.

Everything it submits is removed at the end, whatever happens.
Run (as root, pool started): ``bash tests/services/htcondor.sh start;
env $(cat /tmp/batchml-services/htcondor.env) .venv/bin/python benchmarks/htcondor_bench.py``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import htcondor2

from batchml.backends.base import JobSpec, JobState
from batchml.backends.htcondor import HTCondorBackend
from batchml.backends.htcondor.backend import PROJECTION
from batchml.config.resources import Resources
from batchml.config.site_schema import HTCondorSettings, JobDefaults, Site

SHARED = Path("/srv/batchml-htcondor")
QUEUED = 200
CYCLES = 10


class CountingSchedd(htcondor2.Schedd):
    """The schedd, counting the queries a status cycle sends."""

    queries = 0

    def query(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        CountingSchedd.queries += 1
        return super().query(*args, **kwargs)

    def history(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        CountingSchedd.queries += 1
        return super().history(*args, **kwargs)


def bench_site() -> Site:
    return Site(
        name="bench",
        scheduler="htcondor",
        defaults=JobDefaults(cores=1, memory="64MB", disk="10MB", gpus=1, walltime="20m"),
        htcondor=HTCondorSettings(),
    )


def job(workdir: Path, site: Site, count: int | None = None) -> JobSpec:
    items = tuple(str(i) for i in range(count)) if count else None
    return JobSpec(
        name="bench",
        command=("/bin/sleep", "30"),
        resources=Resources.from_site(site),
        workdir=workdir,
        array_items=items,
    )


def job_dir(parent: Path, name: str) -> Path:
    """A folder the pool's job user can write its output into."""
    path = parent / name
    path.mkdir()
    path.chmod(0o777)
    return path


def submit_to_running(backend: HTCondorBackend, workdir: Path) -> float:
    start = time.perf_counter()
    ids = backend.submit(job(workdir, backend.site))
    try:
        while (info := backend.status(ids)[ids[0]]).state is not JobState.RUNNING:
            if info.state is JobState.HELD or info.state.finished:
                raise RuntimeError(f"the latency job did not run: {info}")
            time.sleep(0.05)
        return time.perf_counter() - start
    finally:
        backend.cancel(ids)


def polling_cost(backend: HTCondorBackend, ids: list[str]) -> tuple[float, float, float, float]:
    """(queries per cycle, seconds per cycle) for status() and for one query per job."""
    schedd = backend._schedd
    CountingSchedd.queries = 0
    start = time.perf_counter()
    for _ in range(CYCLES):
        infos = backend.status(ids)
        assert all(info.state is JobState.HELD for info in infos.values()), "jobs left the queue"
    ours = (CountingSchedd.queries / CYCLES, (time.perf_counter() - start) / CYCLES)
    CountingSchedd.queries = 0
    start = time.perf_counter()
    for _ in range(CYCLES):
        for job_id in ids:
            cluster, _, proc = job_id.partition(".")
            schedd.query(f"ClusterId == {cluster} && ProcId == {proc}", PROJECTION)
    per_job = (CountingSchedd.queries / CYCLES, (time.perf_counter() - start) / CYCLES)
    return ours[0], ours[1], per_job[0], per_job[1]


def main() -> None:
    backend = HTCondorBackend(bench_site())
    backend._schedd = CountingSchedd()  # type: ignore[misc]
    submitted: list[str] = []
    with tempfile.TemporaryDirectory(dir=SHARED) as folder:
        Path(folder).chmod(0o777)
        try:
            latencies = [
                submit_to_running(backend, job_dir(Path(folder), f"latency-{i}")) for i in range(5)
            ]
            submitted = backend.submit(job(job_dir(Path(folder), "queued"), backend.site, QUEUED))
            # Held, so that all 200 stay in the queue for the whole measurement.
            htcondor2.Schedd().act(htcondor2.JobAction.Hold, submitted)
            ours_q, ours_s, base_q, base_s = polling_cost(backend, submitted)
        finally:
            if submitted:
                backend.cancel(submitted)
    print(
        f"submit-to-running, median of 5: {statistics.median(latencies):.2f} s "
        f"(min {min(latencies):.2f}, max {max(latencies):.2f})"
    )
    print(
        f"status of {QUEUED} queued jobs, per cycle: {ours_q:.0f} queries, {ours_s * 1000:.1f} ms"
    )
    print(f"per-job baseline, per cycle: {base_q:.0f} queries, {base_s * 1000:.1f} ms")
    print(f"ratio baseline/ours: queries {base_q / ours_q:.0f}x, time {base_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
