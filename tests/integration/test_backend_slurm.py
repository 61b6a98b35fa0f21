"""SlurmBackend against the real one-node Slurm with 4 fake GPUs (tests/services/slurm.sh).

Dask clusters of GPU workers, torchrun and array jobs from the train template,
quoting of hostile user text, and the cost of status polling. Every wait is a
bounded poll; no test asserts how long anything took.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from dask_jobqueue import SLURMCluster
from distributed import Client, get_worker
from distributed.security import Security

from batchml.backends import JobInfo, JobSpec, JobState
from batchml.backends.base import UnknownJob
from batchml.backends.slurm import SlurmBackend
from batchml.config.resources import Resources
from batchml.config.site_lookup import load_site
from batchml.errors import InvalidValue

pytestmark = pytest.mark.slurm

WAIT_S = 60.0
POLL_S = 0.1
HOSTILE = "x; rm -rf ~ $(touch pwned) `touch pwned2` 'single' \"double\"\nsecond line"
DDP_SCRIPT = """\
import os, sys
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
total = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(total)
with open(os.path.join(sys.argv[1], f"rank-{dist.get_rank()}"), "w") as out:
    out.write(f"{dist.get_world_size()} {total.item()}")
dist.destroy_process_group()
"""
REPORT_SCRIPT = """\
import json, os, sys
with open(sys.argv[1], "w") as out:
    json.dump({"argv": sys.argv[2:], "name": os.environ["BATCHML_JOB_NAME"]}, out)
"""
ARRAY_SCRIPT = """\
import os, sys
with open(os.path.join(sys.argv[1], os.environ["BATCHML_ARRAY_INDEX"]), "w") as out:
    out.write(os.environ["BATCHML_ARRAY_ITEM"])
"""


@pytest.fixture(scope="module")
def backend(slurm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> SlurmBackend:
    """A site file for the test cluster, loaded like any user's: 1 GPU, --mem-per-gpu, 'lo'."""
    shared = slurm_env["BATCHML_SLURM_SHARED"]
    path = tmp_path_factory.mktemp("sites") / "test-slurm.yaml"
    path.write_text(
        "description: the local test Slurm\n"
        "scheduler: slurm\n"
        "defaults: {cores: 1, memory: 400MB, gpus: 1, walltime: 10m}\n"
        f"slurm: {{partition: {slurm_env['BATCHML_SLURM_PARTITION']}, "
        "memory_directive: mem-per-gpu}\n"
        "network: {interface: lo}\n"
        f"paths: {{log_dir: {shared}/logs, shared_dir: {shared}}}\n"
    )
    return SlurmBackend(load_site(path).site)


@pytest.fixture
def job_dir(slurm_env: dict[str, str]) -> Iterator[Path]:
    """A folder in the shared area, where jobs write what they saw."""
    path = Path(tempfile.mkdtemp(prefix="backend-", dir=slurm_env["BATCHML_SLURM_SHARED"]))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_until(condition: Callable[[], object], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout_s:.0f} s")
        time.sleep(POLL_S)


def wait_finished(backend: SlurmBackend, ids: Sequence[str]) -> dict[str, JobInfo]:
    """Poll until every job finished; cancel them all if they do not."""
    rows: dict[str, JobInfo] = {}

    def finished() -> bool:
        rows.update(backend.status(ids))
        return all(rows[i].state.finished for i in ids)

    try:
        wait_until(finished, f"jobs {', '.join(ids)} finishing")
    finally:
        backend.cancel([i for i in ids if not rows.get(i) or not rows[i].state.finished])
    return rows


@contextmanager
def gpu_cluster(backend: SlurmBackend, log_dir: Path) -> Iterator[tuple[SLURMCluster, Client]]:
    """Two 1-GPU worker jobs and a TLS client; the jobs are cancelled whatever happens."""
    cluster = backend.cluster(Resources.from_site(backend.site), jobs=2, log_directory=log_dir)
    try:
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=WAIT_S)
            yield cluster, client
    finally:
        ids = [job.job_id for job in cluster.workers.values() if job.job_id]
        cluster.close()
        backend.cancel([i for i, row in backend.status(ids).items() if not row.state.finished])


# Workers cannot import this test module, and dask pickles module-level functions by
# reference: the tasks are made by factories, so that they travel by value (cloudpickle).
def make_worker_gpu() -> Callable[[str, int], tuple[str, str]]:
    def worker_gpu(barrier: str, parties: int) -> tuple[str, str]:
        """This worker's name and GPUs, once ``parties`` tasks hold a GPU slot at once."""
        folder = Path(barrier)
        (folder / str(get_worker().name)).touch()
        deadline = time.monotonic() + WAIT_S
        while len(list(folder.iterdir())) < parties and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return str(get_worker().name), os.environ.get("CUDA_VISIBLE_DEVICES", "")

    return worker_gpu


def make_hang_on_first_attempt() -> Callable[[str], str]:
    def hang_on_first_attempt(marks: str) -> str:
        """Leave a mark; the first attempt then blocks until its worker job is cancelled."""
        folder = Path(marks)
        first = not any(folder.iterdir())
        (folder / str(get_worker().name)).touch()
        deadline = time.monotonic() + WAIT_S
        while first and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return str(get_worker().name)

    return hang_on_first_attempt


def test_two_gpu_workers_each_task_sees_its_own_gpu(backend: SlurmBackend, job_dir: Path) -> None:
    with gpu_cluster(backend, job_dir / "logs") as (_, client):
        barrier = job_dir / "barrier"
        barrier.mkdir()
        futures = client.map(
            make_worker_gpu(), [str(barrier)] * 2, [2] * 2, resources={"GPU": 1}, pure=False
        )
        results = client.gather(futures)
    names = {name for name, _ in results}
    devices = {gpus for _, gpus in results}
    assert len(names) == 2, f"both tasks ran on one worker: {results}"
    assert len(devices) == 2 and all(d.isdigit() for d in devices), results


def test_client_without_the_credentials_is_refused(backend: SlurmBackend, job_dir: Path) -> None:
    with gpu_cluster(backend, job_dir / "logs") as (_, client):
        address = str(client.scheduler.address)
        assert address.startswith("tls://")
        assert client.submit(sum, [1, 2]).result(timeout=WAIT_S) == 3
        with pytest.raises(OSError):
            Client(address.replace("tls://", "tcp://", 1), timeout="2s")
        with pytest.raises(OSError):
            Client(address, security=Security.temporary(), timeout="2s")


def test_scancel_of_a_worker_reruns_its_task_elsewhere_and_close_empties_the_queue(
    backend: SlurmBackend, job_dir: Path
) -> None:
    marks = job_dir / "marks"
    marks.mkdir()
    with gpu_cluster(backend, job_dir / "logs") as (cluster, client):
        jobs = {name: job.job_id for name, job in cluster.workers.items()}
        future = client.submit(make_hang_on_first_attempt(), str(marks), resources={"GPU": 1})
        wait_until(lambda: any(marks.iterdir()), "the task starting")
        victim = next(marks.iterdir()).name
        backend.cancel([jobs[victim]])
        survivor = future.result(timeout=WAIT_S)
        assert survivor != victim
        assert {p.name for p in marks.iterdir()} == {victim, survivor}
        # dask-jobqueue submits no replacement for the cancelled job by itself.
        wait_until(lambda: backend.status([jobs[victim]])[jobs[victim]].state.finished, "scancel")
        active = {i for i, row in backend.status().items() if not row.state.finished}
        assert active & set(jobs.values()) == {jobs[survivor]}
        cluster.close()

        def queue_empty() -> bool:
            return all(row.state.finished for row in backend.status(list(jobs.values())).values())

        wait_until(queue_empty, "the worker jobs leaving the queue after close")


def test_torchrun_job_runs_two_ranks_that_all_reduce(backend: SlurmBackend, job_dir: Path) -> None:
    script = job_dir / "ddp.py"
    script.write_text(DDP_SCRIPT)
    job = JobSpec(
        name="ddp-check",
        command=(str(script), str(job_dir)),
        resources=Resources.from_site(backend.site, gpus=2),
        workdir=job_dir / "job",
        python=sys.executable,
    )
    ids = backend.submit(job)
    rows = wait_finished(backend, ids)
    assert rows[ids[0]].state is JobState.COMPLETED, (job_dir / "job").glob("slurm-*")
    assert rows[ids[0]].gpus == 2
    assert [(job_dir / f"rank-{r}").read_text() for r in (0, 1)] == ["2 3.0", "2 3.0"]


def test_array_job_runs_each_item(backend: SlurmBackend, job_dir: Path) -> None:
    items = ("alpha", "beta gamma", "'$(delta)'")
    job = JobSpec(
        name="array-check",
        command=(sys.executable, "-c", ARRAY_SCRIPT, str(job_dir)),
        resources=Resources.from_site(backend.site, gpus=0),
        workdir=job_dir / "job",
        array_items=items,
    )
    ids = backend.submit(job)
    assert len(ids) == 3
    rows = wait_finished(backend, ids)
    assert {rows[i].state for i in ids} == {JobState.COMPLETED}
    assert tuple((job_dir / str(index)).read_text() for index in range(3)) == items


def test_hostile_name_and_argument_arrive_literally(backend: SlurmBackend, job_dir: Path) -> None:
    report = job_dir / "report.json"
    job = JobSpec(
        name=HOSTILE,
        command=(sys.executable, "-c", REPORT_SCRIPT, str(report), HOSTILE),
        resources=Resources.from_site(backend.site, gpus=0),
        workdir=job_dir / "job",
        environment={"BATCHML_TEST": HOSTILE},
    )
    ids = backend.submit(job)
    rows = wait_finished(backend, ids)
    assert rows[ids[0]].state is JobState.COMPLETED
    assert rows[ids[0]].name == HOSTILE
    assert json.loads(report.read_text()) == {"argv": [HOSTILE], "name": HOSTILE}
    assert not list(job_dir.rglob("pwned*"))


def test_cancel_stops_a_queued_job_and_refuses_an_id_slurm_does_not_know(
    backend: SlurmBackend, job_dir: Path, tmp_path: Path
) -> None:
    job = JobSpec(
        name="cancel-check",
        command=("sleep", "300"),
        resources=Resources.from_site(backend.site, gpus=0),
        workdir=job_dir / "job",
    )
    (job_id,) = backend.submit(job)
    unknown = "4000000000"  # scancel says nothing and exits 0 for it
    try:
        with pytest.raises(UnknownJob, match=f"Slurm has no job {unknown}: squeue does not"):
            backend.cancel([job_id, unknown])
        assert not backend.status([job_id])[job_id].state.finished  # all or nothing
        with pytest.raises(InvalidValue, match=r"'12\.0' is not a Slurm job id"):
            backend.cancel(["12.0"])
        assert backend.cancel([job_id]) == [job_id]
        wait_until(
            lambda: backend.status([job_id])[job_id].state is JobState.CANCELLED, "the cancel"
        )
        assert backend.cancel([job_id]) == []  # ended: left alone
    finally:
        subprocess.run(["scancel", job_id], timeout=30, check=False)
    site = tmp_path / "plain-slurm.yaml"
    site.write_text("scheduler: slurm\n")
    result = subprocess.run(
        [sys.executable, "-m", "batchml.cli", "jobs", "cancel", unknown, "--site", str(site)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result
    assert result.stderr == (
        f"error: Slurm has no job {unknown}: squeue does not list it\n"
        "hint: your jobs are listed by `batchml jobs --site plain-slurm`\n"
    )


def counted_commands(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Slurm's commands, each behind a script first on PATH that logs its name to the file
    returned, then runs the real one."""
    folder.mkdir()
    log = folder / "calls"
    for program in ("squeue", "sacct", "scontrol", "scancel"):
        real = shutil.which(program)
        assert real is not None, f"{program} is not on PATH"
        wrapper = folder / program
        wrapper.write_text(f'#!/bin/sh\necho {program} >> "{log}"\nexec "{real}" "$@"\n')
        wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return log


def test_status_makes_one_squeue_call_per_cycle(
    backend: SlurmBackend, job_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = JobSpec(
        name="poll-check",
        command=("true",),
        resources=Resources.from_site(backend.site, gpus=0),
        workdir=job_dir / "job",
        array_items=("a", "b", "c", "d"),
    )
    ids = backend.submit(job)
    log = counted_commands(tmp_path / "bin", monkeypatch)
    gone = "4000000000"  # never in the queue: it takes the path of a job that left it
    for _ in range(int(WAIT_S / POLL_S)):
        log.unlink(missing_ok=True)
        rows = backend.status([*ids, gone])
        calls = log.read_text().split()
        assert calls.count("squeue") == 1 and "sacct" not in calls, calls
        assert rows[gone].state is JobState.UNKNOWN
        if all(rows[i].state.finished for i in ids):
            break
        time.sleep(POLL_S)
    else:
        backend.cancel(ids)
        pytest.fail(f"array {ids} did not finish")
    assert {rows[i].state for i in ids} == {JobState.COMPLETED}
