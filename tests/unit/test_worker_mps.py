"""A worker job on a site with ``mps: true`` runs its own CUDA MPS daemon, privately.

There is no GPU here, so ``nvidia-cuda-mps-control`` is a stand-in on PATH
(tests/unit/mps_stand_in.py); the job script around it is the real prologue
every worker job runs, under /bin/sh as HTCondor runs it. test_hpo_slurm.py
runs it in real Slurm worker jobs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from batchml.backends._worker import worker_prologue
from batchml.config.site_schema import Site
from tests.unit import mps_stand_in


def _job(tmp_path: Path, worker_line: str, *, mps: bool = True, gpus: int = 1) -> list[str]:
    """The argv of a worker job script: the prologue, then ``worker_line`` for the worker."""
    site = Site.model_validate(
        {"name": "s", "scheduler": "slurm", "mps": mps, "paths": {"scratch_dir": "$JOB_SCRATCH"}}
    )
    script = tmp_path / "job.sh"
    script.write_text("\n".join([*worker_prologue(site, None, gpus), worker_line, ""]))
    return ["/bin/sh", str(script)]


@pytest.fixture
def node(tmp_path: Path) -> dict[str, str]:
    """The environment of a compute node with the stand-in control program on PATH."""
    bin_dir = mps_stand_in.install(tmp_path)
    (tmp_path / "scratch").mkdir()
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "JOB_SCRATCH": str(tmp_path / "scratch"),
        "MPS_RECORD": str(tmp_path / "record"),
    }


def _calls(tmp_path: Path) -> list[dict[str, str]]:
    return mps_stand_in.calls(tmp_path / "record")


def test_the_job_starts_its_own_daemon_in_private_folders_and_quits_it_at_the_end(
    tmp_path: Path, node: dict[str, str]
) -> None:
    worker = 'echo "$CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY" >"$JOB_SCRATCH.worker"'
    done = subprocess.run(_job(tmp_path, worker), env=node, timeout=30, check=False)
    assert done.returncode == 0
    start, stop = _calls(tmp_path)
    assert start["args"] == "-d" and stop["args"] == "" and stop["stdin"] == "quit"
    pipe, mode = start["pipe"].split()
    log, log_mode = start["log"].split()
    assert (mode, log_mode, start["folder"]) == ("700", "700", "700")  # nobody else's to read
    assert Path(pipe).parent == Path(log).parent
    assert Path(pipe).parent.parent == tmp_path / "scratch"  # in the job's scratch
    assert stop["pipe"].split()[0] == pipe  # the same daemon is told to quit
    assert (tmp_path / "scratch.worker").read_text().split() == [pipe, log]  # the worker's too
    assert list((tmp_path / "scratch").iterdir()) == []  # removed with the job


def test_a_job_ended_with_sigterm_still_quits_its_daemon(
    tmp_path: Path, node: dict[str, str]
) -> None:
    job = subprocess.Popen(_job(tmp_path, "sleep 60"), env=node, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "record").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the shell reaches the worker's line
        os.killpg(job.pid, signal.SIGTERM)  # as scancel does: every process of the job
        assert job.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert [c["args"] for c in _calls(tmp_path)] == ["-d", ""]
    assert _calls(tmp_path)[1]["stdin"] == "quit"
    assert list((tmp_path / "scratch").iterdir()) == []


@pytest.mark.parametrize(("mps", "gpus"), [(False, 1), (True, 0)])
def test_no_daemon_without_mps_or_without_gpus(
    tmp_path: Path, node: dict[str, str], mps: bool, gpus: int
) -> None:
    done = subprocess.run(_job(tmp_path, "true", mps=mps, gpus=gpus), env=node, timeout=30)
    assert done.returncode == 0
    assert not (tmp_path / "record").exists()
    assert list((tmp_path / "scratch").iterdir()) == []
