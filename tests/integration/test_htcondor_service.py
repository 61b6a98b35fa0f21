"""Smoke test of the real HTCondor pool started by ``tests/services/htcondor.sh``.

These tests prove the pool is the one batchml's HTCondor code needs: jobs
submitted from the host (bindings and ``condor_submit``) run as the submit user,
see their simulated GPUs the way a real GPU job would, and write their outputs
to the folder shared between the host and the pool.
"""

from __future__ import annotations

import pwd
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import htcondor2
import pytest

pytestmark = pytest.mark.htcondor

JOB_TIMEOUT_S = 120
TERMINAL_EVENTS = {htcondor2.JobEventType.JOB_TERMINATED, htcondor2.JobEventType.JOB_ABORTED}
FAILURE_EVENTS = {
    htcondor2.JobEventType.JOB_HELD,
    htcondor2.JobEventType.SHADOW_EXCEPTION,
    htcondor2.JobEventType.EXECUTABLE_ERROR,
}

# Each job waits (bounded) until all jobs of its cluster have started, so that
# jobs which fit together provably held their GPUs at the same time.
RENDEZVOUS_SCRIPT = """\
touch "started.$1"
i=0
while [ "$(ls started.* | wc -l)" -lt "$2" ] && [ "$i" -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
ls started.* | wc -l > "seen.$1"
env > "env.$1"
"""


@pytest.fixture
def new_job_dir(
    htcondor_env: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[Callable[[str], Path]]:
    """Fresh folders in the shared folder (same path for the host and the pool,
    writable by the submit user the jobs run as); kept when the test failed, so
    the job's files can be read."""
    made: list[Path] = []
    failed_before = request.session.testsfailed

    def make(name: str) -> Path:
        shared = Path(htcondor_env["BATCHML_HTCONDOR_SHARED"])
        path = shared / f"test-{name}-{uuid.uuid4().hex[:8]}"
        path.mkdir(mode=0o777)
        path.chmod(0o777)  # mkdir's mode is cut by the umask
        made.append(path)
        return path

    yield make
    if request.session.testsfailed == failed_before:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


def read_env_dump(path: Path) -> dict[str, str]:
    """The environment a job saw, as dumped by `env`."""
    pairs = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            pairs[key] = value
    return pairs


def gpu_ids(job_env: dict[str, str]) -> list[str]:
    """The GPU ids HTCondor assigned to a job, checked against what CUDA would see."""
    assigned = job_env.get("_CONDOR_AssignedGPUs", "")
    assert assigned.startswith("GPU-"), f"no GPU id assigned: {assigned!r}"
    assert job_env.get("CUDA_VISIBLE_DEVICES") == assigned
    return assigned.split(",")


def submit(description: dict[str, str], count: int = 1) -> int:
    """Submit through the host's bindings, authenticated by the pool's IDTOKEN."""
    result = htcondor2.Schedd().submit(htcondor2.Submit(description), count=count)
    return result.cluster()


def wait_for_jobs(event_log: Path, cluster: int, count: int) -> None:
    """Block on the job event log (no fixed sleeps) until `count` jobs of `cluster`
    ended; fail at once on a hold or shadow error, with HTCondor's reason. A failed
    cluster is removed, so held jobs do not pile up in the pool the next run reuses."""
    try:
        _follow_event_log(event_log, cluster, count)
    except BaseException:
        htcondor2.Schedd().act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}")
        raise


def _follow_event_log(event_log: Path, cluster: int, count: int) -> None:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not event_log.exists():
        assert time.monotonic() < deadline, f"no event log {event_log} after {JOB_TIMEOUT_S}s"
        time.sleep(0.1)
    finished: set[int] = set()
    events = htcondor2.JobEventLog(str(event_log))
    while len(finished) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"cluster {cluster}: {len(finished)}/{count} jobs done in time"
        for event in events.events(stop_after=max(1, int(remaining))):
            if event.cluster != cluster:
                continue
            if event.type in FAILURE_EVENTS:
                reason = event.get("HoldReason") or event.get("Message") or str(event)
                pytest.fail(f"job {cluster}.{event.proc} failed: {reason}")
            if event.type in TERMINAL_EVENTS:
                assert event.type == htcondor2.JobEventType.JOB_TERMINATED, str(event)
                assert event.get("ReturnValue") == 0, str(event)
                finished.add(event.proc)
            if len(finished) == count:
                break


def shell_job(job_dir: Path, arguments: str, **extra: str) -> dict[str, str]:
    """A /bin/sh job that runs in place in the shared folder (no file transfer)."""
    return {
        "executable": "/bin/sh",
        "transfer_executable": "false",
        "should_transfer_files": "NO",
        "arguments": arguments,
        "initialdir": str(job_dir),
        "output": "out.$(ProcId)",
        "error": "err.$(ProcId)",
        "log": "events.log",
        "request_cpus": "1",
        "request_memory": "64MB",
        **extra,
    }


def test_job_from_bindings_sees_one_gpu(
    htcondor_env: dict[str, str], new_job_dir: Callable[[str], Path]
) -> None:
    job_dir = new_job_dir("one-gpu")
    cluster = submit(shell_job(job_dir, "\"-c 'env > env.txt'\"", request_gpus="1"))
    wait_for_jobs(job_dir / "events.log", cluster, 1)

    job_env = read_env_dump(job_dir / "env.txt")
    assert len(gpu_ids(job_env)) == 1
    # The job ran as the submit user, whose uid is the same on the host.
    owner = pwd.getpwuid((job_dir / "env.txt").stat().st_uid).pw_name
    assert owner == htcondor_env["BATCHML_HTCONDOR_USER"]


def test_two_jobs_get_two_distinct_gpus_each(
    htcondor_env: dict[str, str], new_job_dir: Callable[[str], Path]
) -> None:
    job_dir = new_job_dir("two-gpus")
    (job_dir / "rendezvous.sh").write_text(RENDEZVOUS_SCRIPT)
    cluster = submit(
        shell_job(job_dir, "rendezvous.sh $(ProcId) 2", request_gpus="2"),
        count=2,
    )
    wait_for_jobs(job_dir / "events.log", cluster, 2)

    per_job = [gpu_ids(read_env_dump(job_dir / f"env.{proc}")) for proc in (0, 1)]
    for ids in per_job:
        assert len(ids) == 2 and len(set(ids)) == 2, ids
    ran_together = all(int((job_dir / f"seen.{proc}").read_text()) == 2 for proc in (0, 1))
    if ran_together:
        assert not set(per_job[0]) & set(per_job[1]), f"GPUs shared at once: {per_job}"


def test_condor_submit_wrapper_runs_a_job(
    htcondor_env: dict[str, str], new_job_dir: Callable[[str], Path]
) -> None:
    bin_dir = Path(htcondor_env["BATCHML_HTCONDOR_BIN"])
    job_dir = new_job_dir("wrapper")
    (job_dir / "job.sub").write_text(
        "executable = /bin/sh\n"
        "arguments = \"-c 'echo hello from; id -un'\"\n"
        "transfer_executable = false\n"
        "should_transfer_files = NO\n"
        "output = out.txt\n"
        "error = err.txt\n"
        "log = events.log\n"
        "request_cpus = 1\n"
        "request_memory = 64MB\n"
        "queue\n"
    )
    submitted = subprocess.run(
        [str(bin_dir / "condor_submit"), "job.sub"],
        cwd=job_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    match = re.search(r"submitted to cluster (\d+)", submitted.stdout)
    assert match, submitted.stdout + submitted.stderr
    cluster = int(match.group(1))

    queue = subprocess.run(
        [str(bin_dir / "condor_q"), str(cluster), "-af", "Owner"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert queue.stdout.strip() in ("", htcondor_env["BATCHML_HTCONDOR_USER"])

    wait_for_jobs(job_dir / "events.log", cluster, 1)
    user = htcondor_env["BATCHML_HTCONDOR_USER"]
    assert (job_dir / "out.txt").read_text().split() == ["hello", "from", user]


def test_collector_reports_four_gpus(htcondor_env: dict[str, str]) -> None:
    ads = htcondor2.Collector().query(
        htcondor2.AdTypes.Startd, projection=["Name", "TotalGPUs", "DetectedGPUs"]
    )
    total = sum(int(ad.get("TotalGPUs", 0)) for ad in ads)
    assert total == int(htcondor_env["BATCHML_HTCONDOR_GPUS"]) == 4, [dict(ad) for ad in ads]
    detected = [gpu.strip() for ad in ads for gpu in str(ad.get("DetectedGPUs", "")).split(",")]
    assert len(detected) == 4 and all(gpu.startswith("GPU-") for gpu in detected), detected
