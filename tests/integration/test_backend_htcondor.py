"""HTCondorBackend against the real personal pool of ``tests/services/htcondor.sh``.

Plain jobs are submitted from the host through the htcondor2 bindings (the
pool's IDTOKEN makes the host a submit node acting as the submit user). The
dask-cluster tests need a driver with the same Python and packages as its
workers, which run as the submit user inside the pool, where the host's venv
(Python 3.11 under /root) cannot be read: their driver is this very file, run
as a script by the pool venv's Python 3.13 (``batchml-pool-python``, built by
htcondor.sh) with a copy of the checkout's ``batchml`` beside it; it writes a
JSON report that the host tests check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import htcondor2
import pytest

from batchml.backends.base import JobSpec, JobState, UnknownJob
from batchml.backends.htcondor import HTCondorBackend
from batchml.config.resources import Resources
from batchml.config.site_lookup import load_site
from batchml.config.site_schema import (
    Container,
    Environment,
    HTCondorSettings,
    JobDefaults,
    Network,
    Site,
)

pytestmark = pytest.mark.htcondor

JOB_TIMEOUT_S = 120
HOSTILE = "x; rm -rf ~ $(touch pwned) `id` 'single' \"double\"\nsecond line"


def pool_site() -> Site:
    """A small site for the test pool: 1 simulated V100 per job, espresso flavour, and
    one port range for the scheduler, workers and nannies (a firewalled site's)."""
    return Site(
        name="test-pool",
        scheduler="htcondor",
        defaults=JobDefaults(
            cores=1, memory="1GB", disk="1GB", gpus=1, gpu_capability=7.0, walltime="20m"
        ),
        htcondor=HTCondorSettings(job_flavour="espresso", want_os="el9"),
        network=Network(interface="lo", worker_ports="40000-40100"),
    )


def lxplus_in_pool() -> Site:
    """The shipped lxplus site as the pool can run it: without CVMFS (LCG view, image) and
    without a Kerberos credd (a job with MY.SendCredential cannot start there)."""
    lxplus = load_site("lxplus").site
    assert lxplus.htcondor is not None
    condor = lxplus.htcondor.model_copy(update={"send_credential": "never"})
    return lxplus.model_copy(
        update={"environment": Environment(), "container": Container(), "htcondor": condor}
    )


@pytest.fixture
def job_dir(htcondor_env: dict[str, str], request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh folder in the shared folder that the pool's job user can write; kept when the
    test failed, so that its job files can be read."""
    failed_before = request.session.testsfailed
    shared = htcondor_env["BATCHML_HTCONDOR_SHARED"]
    path = Path(tempfile.mkdtemp(prefix=f"{request.node.name[:40]}-", dir=shared))
    path.chmod(0o777)
    yield path
    if request.session.testsfailed == failed_before:
        shutil.rmtree(path, ignore_errors=True)


def wait_finished(backend: HTCondorBackend, ids: Sequence[str]) -> dict[str, Any]:
    """Poll ``status`` (one query per cycle) until every job finished; remove them on timeout."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        infos = backend.status(ids)
        held = [info for info in infos.values() if info.state is JobState.HELD]
        if held or all(info.state.finished for info in infos.values()):
            break
        time.sleep(0.5)
    else:
        backend.cancel(ids)
        pytest.fail(f"jobs {ids} did not finish in {JOB_TIMEOUT_S}s: {infos}")
    if held:
        backend.cancel(ids)
        pytest.fail(f"held: {held}")
    return infos


def test_lxplus_submit_runs_on_a_gpu_slot(job_dir: Path) -> None:
    backend = HTCondorBackend(lxplus_in_pool())
    workdir = job_dir
    job = JobSpec(
        name="lxplus-style",
        command=("/bin/sh", "-c", "echo gpus=$CUDA_VISIBLE_DEVICES"),
        resources=Resources.from_site(backend.site, walltime="90m"),
        workdir=workdir,
    )
    submit_text = backend.render(job).files["job.sub"]
    for line in ('+JobFlavour             = "longlunch"', 'MY.WantOS               = "el9"'):
        assert line in submit_text
    assert "GPUs_Capability ?: TARGET.CUDACapability) >= 7.0" in submit_text

    ids = backend.submit(job)
    infos = wait_finished(backend, ids)

    [info] = infos.values()
    assert info.state is JobState.COMPLETED, info
    assert info.gpus == 1 and info.node
    ad = htcondor2.Schedd().query(f"ClusterId == {ids[0].split('.')[0]}", ["JobFlavour", "WantOS"])
    assert [(a["JobFlavour"], a["WantOS"]) for a in ad] in ([], [("longlunch", "el9")])
    # lxplus spools: the output waits in the schedd until it is fetched.
    htcondor2.Schedd().retrieve(f"ClusterId == {ids[0].split('.')[0]}")
    output = (workdir / f"job.{ids[0]}.out").read_text()
    assert output.startswith("gpus=GPU-"), output


def test_array_of_twenty_completes(job_dir: Path) -> None:
    backend = HTCondorBackend(pool_site())
    workdir = job_dir
    items = tuple(f"item {i} $(not run)" for i in range(20))
    job = JobSpec(
        name="array",
        command=("/bin/sh", "-c", 'printf %s "$BATCHML_ARRAY_ITEM" > "out.$BATCHML_ARRAY_INDEX"'),
        resources=Resources.from_site(backend.site, gpus=0),
        workdir=workdir,
        array_items=items,
    )
    ids = backend.submit(job)
    assert len(ids) == 20

    infos = wait_finished(backend, ids)

    assert {info.state for info in infos.values()} == {JobState.COMPLETED}
    assert [(workdir / f"out.{i}").read_text() for i in range(20)] == list(items)


def test_hostile_name_and_argument_arrive_literally(job_dir: Path) -> None:
    backend = HTCondorBackend(pool_site())
    workdir = job_dir
    script = 'printf %s "$1" > argument.txt; printf %s "$BATCHML_JOB_NAME" > name.txt'
    job = JobSpec(
        name=HOSTILE,
        command=("/bin/sh", "-c", script, "sh", HOSTILE),
        resources=Resources.from_site(backend.site, gpus=0),
        workdir=workdir,
    )
    ids = backend.submit(job)
    infos = wait_finished(backend, ids)

    assert infos[ids[0]].state is JobState.COMPLETED
    # The schedd's JobBatchName is a one-line label; the job gets the exact name.
    assert infos[ids[0]].name == " ".join(HOSTILE.split())
    assert (workdir / "argument.txt").read_text() == HOSTILE
    assert (workdir / "name.txt").read_text() == HOSTILE
    assert not list(workdir.glob("pwned")) and not (Path.home() / "pwned").exists()


def test_held_job_shows_its_reason_and_cancel_removes_it(job_dir: Path) -> None:
    backend = HTCondorBackend(pool_site())
    workdir = job_dir
    workdir.chmod(0o755)  # the job's user cannot create its output file there: HTCondor holds it
    job = JobSpec(
        name="held",
        command=("/bin/true",),
        resources=Resources.from_site(backend.site, gpus=0),
        workdir=workdir,
    )
    [job_id] = backend.submit(job)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (info := backend.status([job_id])[job_id]).state is not JobState.HELD:
        assert time.monotonic() < deadline and not info.state.finished, info
        time.sleep(0.2)
    assert info.reason and "Permission denied" in info.reason, info

    unknown = "999999999.0"
    with pytest.raises(UnknownJob, match=f"has no job {unknown}: not in its queue, not in its"):
        backend.cancel([job_id, unknown])
    assert backend.status([job_id])[job_id].state is JobState.HELD  # all or nothing
    assert backend.cancel([job_id]) == [job_id]
    deadline = time.monotonic() + 30
    while (info := backend.status([job_id])[job_id]).state is not JobState.CANCELLED:
        assert time.monotonic() < deadline, info
        time.sleep(0.2)
    assert info.reason
    assert backend.cancel([job_id]) == []  # removed already: left alone


def test_cli_cancel_of_an_unknown_id_exits_2_with_an_error_and_a_hint(tmp_path: Path) -> None:
    site = tmp_path / "pool.yaml"
    site.write_text("scheduler: htcondor\n")
    result = subprocess.run(
        [sys.executable, "-m", "batchml.cli", "jobs", "cancel", "999999999.0", "--site", str(site)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result
    assert result.stderr == (
        "error: the HTCondor schedd (local) has no job 999999999.0: "
        "not in its queue, not in its history\n"
        "hint: your jobs are listed by `batchml jobs --site pool`\n"
    )


# ------------------------------------------------------- dask clusters (driven in the pool)


@pytest.fixture(scope="module")
def cluster_report(htcondor_env: dict[str, str]) -> dict[str, Any]:
    """Run ``pool_main`` inside the pool (see tests/integration/pool.py); its JSON report."""
    from tests.integration.pool import run_in_pool  # here: this file also runs in the pool

    return run_in_pool(htcondor_env, Path(__file__), timeout_s=180)


def test_two_gpu_workers_each_task_sees_its_own_gpu(cluster_report: dict[str, Any]) -> None:
    assert cluster_report["python"].startswith("3.13"), cluster_report["python"]
    tasks = cluster_report["tasks"]
    assert len(tasks) == 2
    gpus = [task["gpus"] for task in tasks]
    assert all(gpu.startswith("GPU-") and "," not in gpu for gpu in gpus), gpus
    assert len(set(gpus)) == 2, gpus
    assert len({task["worker"] for task in tasks}) == 2, tasks
    assert [task["tls_fix"] for task in tasks] == [True, True]  # batchml's dask preload ran
    port = int(cluster_report["address"].rpartition(":")[2])
    assert cluster_report["address"].startswith("tls://127.0.0.1:") and 40000 <= port <= 40100


def test_client_without_the_credentials_is_refused(cluster_report: dict[str, Any]) -> None:
    probes = cluster_report["probes"]
    assert set(probes) == {"plain tcp", "TLS without a certificate", "TLS from another CA"}
    assert all(outcome.startswith("refused") for outcome in probes.values()), probes


def test_closing_the_cluster_empties_the_queue(cluster_report: dict[str, Any]) -> None:
    assert len(cluster_report["worker_jobs"]) == 2
    assert cluster_report["left_in_queue"] == []


# ---------------------------------------------------------------- the driver, run in the pool


def gpu_of_this_worker() -> dict[str, str]:
    """Runs in a worker: the GPU HTCondor gave its job. Held a moment so both workers work."""
    from distributed import get_worker
    from tornado.iostream import SSLIOStream

    time.sleep(1)
    return {
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "worker": get_worker().address,
        "tls_fix": hasattr(SSLIOStream.read_from_fd, "__wrapped__"),  # the preload ran
    }


def probe(address: str, security: Any) -> str:
    """Whether a client gets in: 'connected', or 'refused: <error>'.

    Each attempt runs in its own process: after one failed Client, dask's shared
    IO-loop runner in the same process sometimes fails to start the next one.
    """
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return str(pool.apply(_probe_once, (address, security)))


def _probe_once(address: str, security: Any) -> str:
    from distributed import Client

    try:
        with Client(address, security=security, timeout=3):
            return "connected"
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        return f"refused: {type(exc).__name__}"


def pool_main(run_dir: Path) -> None:
    """Two 1-GPU workers as HTCondor jobs, one task each, three intruders, then close."""
    from distributed import Client
    from distributed.security import Security

    from batchml.backends.commands import run_command

    # Workers import batchml (its TLS fix is a dask preload): this copy of it, as in real
    # use, where they run the driver's own Python.
    workers_env = Environment(variables={"PYTHONPATH": str(run_dir / "src")})
    backend = HTCondorBackend(pool_site().model_copy(update={"environment": workers_env}))
    resources = Resources.from_site(backend.site)
    report: dict[str, Any] = {"python": sys.version}
    with backend.cluster(resources, jobs=2, log_directory=str(run_dir / "logs")) as cluster:
        with Client(cluster) as client:
            deadline = time.monotonic() + 90
            while len(client.scheduler_info(n_workers=-1)["workers"]) < 2:
                assert time.monotonic() < deadline, "two workers did not connect in 90 s"
                time.sleep(0.2)
            futures = [
                client.submit(gpu_of_this_worker, resources={"GPU": 1}, pure=False)
                for _ in range(2)
            ]
            report["tasks"] = client.gather(futures)
        address = cluster.scheduler_address
        no_certificate = Security(tls_ca_file=cluster.security.tls_ca_file, require_encryption=True)
        report["address"] = address
        report["probes"] = {
            "plain tcp": probe(address.replace("tls://", "tcp://"), None),
            "TLS without a certificate": probe(address, no_certificate),
            "TLS from another CA": probe(address, Security.temporary()),
        }
        report["worker_jobs"] = [job.job_id for job in cluster.workers.values()]
    # condor_q, as dask-jobqueue uses the tools: in the pool they authenticate by FS.
    deadline = time.monotonic() + 30
    listing = ["condor_q", *report["worker_jobs"], "-af", "GlobalJobId"]
    while (left := run_command(listing).split()) and time.monotonic() < deadline:
        time.sleep(0.5)
    report["left_in_queue"] = left
    (run_dir / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    import pool_log  # copied beside this file by run_in_pool

    pool_log.info_to_stderr()
    pool_main(Path(sys.argv[1]))
