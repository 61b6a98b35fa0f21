"""The embedded-default backend: GPU slots per worker, TLS on loopback, plain jobs run here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client
from distributed.security import Security

from batchml.backends import JobSpec, JobState, SchedulerError, UnknownJob, backend_for
from batchml.backends.local import LocalBackend
from batchml.config.resources import Resources
from batchml.config.site_lookup import load_site
from batchml.errors import InvalidValue


def hostile(marker: Path) -> str:
    """A name or argument that runs ``touch marker`` if anything evaluates it as shell."""
    return f"a b; rm -rf ~ $(touch {marker}) `touch {marker}` 'single' \"double\"\nsecond line"


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalBackend:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    site = load_site("local").site
    found = backend_for(site)
    assert isinstance(found, LocalBackend)
    return found


def wait_finished(backend: LocalBackend, job_id: str, limit: float = 60) -> JobState:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        state = backend.status([job_id])[job_id].state
        if state.finished:
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish within {limit} s")


@pytest.mark.parametrize(
    ("visible", "gpus", "jobs", "need"),
    [("0,1,2,3", 2, 3, 6), ("0,1,-1", 1, 3, 3), (None, 1, 1, 1)],
)
def test_more_gpus_than_the_machine_shows_is_refused_before_any_worker_starts(
    backend: LocalBackend,
    monkeypatch: pytest.MonkeyPatch,
    visible: str | None,
    gpus: int,
    jobs: int,
    need: int,
) -> None:
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    with pytest.raises(SchedulerError, match=f"need {need} GPUs, but CUDA_VISIBLE_DEVICES"):
        backend.cluster(Resources(cores=1, gpus=gpus), jobs=jobs)


def test_hostile_name_and_argument_arrive_literally(backend: LocalBackend, tmp_path: Path) -> None:
    out, marker = tmp_path / "argv.json", tmp_path / "pwned"
    text = hostile(marker)
    code = (
        "import json, os, sys; "
        "json.dump([sys.argv[1:], os.environ['BATCHML_JOB_NAME']], open(sys.argv[1], 'w'))"
    )
    job = JobSpec(
        name=text,
        command=(sys.executable, "-c", code, str(out), text),
        resources=Resources.from_site(backend.site),
        workdir=tmp_path / "job",
    )
    (job_id,) = backend.submit(job)
    assert wait_finished(backend, job_id) is JobState.COMPLETED
    argv, name = json.loads(out.read_text())
    assert argv == [str(out), text] and name == text
    assert not marker.exists()


def test_array_items_and_failure_state(backend: LocalBackend, tmp_path: Path) -> None:
    items = ("alpha", "beta gamma", "$(delta)")
    job = JobSpec(
        name="array",
        command=(
            "sh",
            "-c",
            'printf "%s|%s" "$BATCHML_ARRAY_INDEX" "$BATCHML_ARRAY_ITEM" '
            '> "out-$BATCHML_ARRAY_INDEX"; exit 3',
        ),
        resources=Resources.from_site(backend.site),
        workdir=tmp_path / "array",
        array_items=items,
    )
    (job_id,) = backend.submit(job)
    assert wait_finished(backend, job_id) is JobState.FAILED
    got = [(tmp_path / "array" / f"out-{i}").read_text() for i in range(3)]
    assert got == [f"{i}|{item}" for i, item in enumerate(items)]
    assert job_id in backend.status()  # found again from its record, as `batchml jobs` does


def sleeper(backend: LocalBackend, workdir: Path) -> JobSpec:
    return JobSpec(
        name="sleeper",
        command=("sleep", "300"),
        resources=Resources.from_site(backend.site),
        workdir=workdir,
    )


def test_cancel_stops_a_running_job(backend: LocalBackend, tmp_path: Path) -> None:
    (job_id,) = backend.submit(sleeper(backend, tmp_path / "sleep"))
    assert backend.status([job_id])[job_id].state is JobState.RUNNING
    assert backend.cancel([job_id]) == [job_id]
    assert wait_finished(backend, job_id, limit=20) is JobState.CANCELLED
    assert backend.cancel([job_id]) == []  # ended: nothing left to stop


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A process batchml did not start, leading a process group of its own, as jobs do."""
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def test_cancel_signals_no_process_batchml_did_not_start(
    backend: LocalBackend, tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    (job_id,) = backend.submit(sleeper(backend, tmp_path / "sleep"))
    for ids in ([str(stranger.pid)], [job_id, str(stranger.pid)], ["999999999"], ["-1"]):
        with pytest.raises(UnknownJob, match=f"no local job '{ids[-1]}'"):
            backend.cancel(ids)
    time.sleep(0.2)
    assert stranger.poll() is None  # not signalled
    assert backend.status([job_id])[job_id].state is JobState.RUNNING  # nor the job: all or none
    backend.cancel([job_id])


def test_a_process_that_took_over_an_ended_jobs_id_is_not_the_job(
    backend: LocalBackend, tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    job = JobSpec(
        name="short",
        command=("true",),
        resources=Resources.from_site(backend.site),
        workdir=tmp_path / "short",
    )
    # A process that really reuses an id starts long after the job did; one started within
    # the same clock tick (starttime counts 1/100 s) would carry the job's very identity.
    time.sleep(0.05)
    (job_id,) = backend.submit(job)
    assert wait_finished(backend, job_id) is JobState.COMPLETED
    # What reuse of the id leaves: the job's record, its id now another process's.
    (backend.records / job_id).rename(backend.records / str(stranger.pid))
    assert backend.status([str(stranger.pid)])[str(stranger.pid)].state is JobState.COMPLETED
    assert backend.cancel([str(stranger.pid)]) == []
    time.sleep(0.2)
    assert stranger.poll() is None


def test_cluster_gives_each_worker_its_own_gpus_behind_tls(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    resources = Resources.from_site(backend.site, gpus=2, cores=1, memory="1GB")
    with backend.cluster(resources) as cluster, Client(cluster) as client:
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
        client.wait_for_workers(2, timeout=60)
        seen = client.run(lambda: os.environ["CUDA_VISIBLE_DEVICES"])
        assert sorted(seen.values()) == ["0,1", "2,3"]
        gpu_totals = [w["resources"] for w in client.scheduler_info()["workers"].values()]
        assert gpu_totals == [{"GPU": 2}, {"GPU": 2}]
        # Workers and their nannies load the TLS fix (batchml._compat.tornado_tls).
        fixed = client.run(_clears_openssl_errors)
        assert list(fixed.values()) == [True, True]
        assert list(client.run(_clears_openssl_errors, nanny=True).values()) == [True, True]
        stranger = Security.temporary()  # a valid certificate, but not this cluster's
        with pytest.raises((OSError, TimeoutError)):
            Client(cluster.scheduler_address, security=stranger, timeout="3s")
        plain = cluster.scheduler_address.replace("tls://", "tcp://")
        with pytest.raises((OSError, TimeoutError)):
            Client(plain, timeout="3s")


def _clears_openssl_errors() -> bool:
    from tornado.iostream import SSLIOStream

    return hasattr(SSLIOStream.read_from_fd, "__wrapped__")


def test_a_worker_that_cannot_start_is_named_at_once(backend: LocalBackend) -> None:
    started = time.monotonic()
    with pytest.raises(SchedulerError, match="local dask worker worker-0 exited with status 1"):
        backend.cluster(Resources(cores=1), jobs=1, python="false")  # a Python that fails
    assert time.monotonic() - started < 60  # not the connection timeout


def test_plain_tcp_is_refused_on_this_machine(backend: LocalBackend) -> None:
    with pytest.raises(InvalidValue, match="security=False: local workers always talk over TLS"):
        backend.cluster(Resources(cores=1), jobs=1, security=False)
