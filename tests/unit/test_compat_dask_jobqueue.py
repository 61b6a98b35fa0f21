"""batchml._compat.dask_jobqueue: every name it reaches in dask-jobqueue and distributed,
checked on real objects, and Ctrl-C stays a KeyboardInterrupt once dask-jobqueue is loaded.

The SIGINT cases each run in a fresh interpreter: the handler is process-wide, and set
at import.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from batchml._compat.dask_jobqueue import (
    CHECKED_ON,
    HANDLER_MODULE,
    HTCondorJob,
    KeepsSubmitError,
    SLURMCluster,
    SLURMJob,
    drop_refused,
    executable,
    interface_address,
    log_directory,
    rewrite_worker_command,
    submit_entries,
    workers_of,
)

CTRL_C = "import os, signal, time; os.kill(os.getpid(), signal.SIGINT); time.sleep(10)"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("package", sorted(CHECKED_ON))
def test_checked_on_this_release(package: str) -> None:
    """When this fails, a release changed: run this file, check each name in the module's
    docstring still means what it says, then update CHECKED_ON (or drop what is fixed)."""
    assert version(package) == CHECKED_ON[package], (
        f"{package} {version(package)}: batchml._compat.dask_jobqueue was checked on "
        f"{CHECKED_ON[package]}"
    )


def test_dask_jobqueue_still_makes_ctrl_c_exit_0() -> None:
    """When this fails, a dask-jobqueue release changed: check it, then update or drop the fix."""
    probe = _python(
        "import signal, dask_jobqueue\n"
        "print(dask_jobqueue.__version__, signal.getsignal(signal.SIGINT).__module__)"
    )
    assert probe.stdout.split() == [CHECKED_ON["dask-jobqueue"], HANDLER_MODULE], probe.stderr
    assert _python(f"import dask_jobqueue\n{CTRL_C}").returncode == 0


@pytest.mark.parametrize(
    "imports",
    [
        "import batchml._compat.dask_jobqueue",
        "import dask_jobqueue\nimport batchml._compat.dask_jobqueue",  # another import came first
        "import batchml.hpo\nimport dask_jobqueue.slurm",  # and later ones change nothing
    ],
)
def test_through_batchml_ctrl_c_raises_keyboard_interrupt(imports: str) -> None:
    ended = _python(f"{imports}\n{CTRL_C}")
    assert ended.returncode == -signal.SIGINT, ended.stderr  # an uncaught KeyboardInterrupt
    assert "KeyboardInterrupt" in ended.stderr


def test_an_htcondor_worker_description_is_changed_where_it_is_written(tmp_path: Path) -> None:
    job = HTCondorJob(cores=1, memory="1GB", disk="1GB", log_directory=str(tmp_path / "logs"))
    assert log_directory(job) == str(tmp_path / "logs")  # Job.log_directory
    rewrite_worker_command(job, lambda command: f"echo first; {command}")  # _command_template
    submit_entries(job)["MY.Marked"] = "true"  # HTCondorJob.job_header_dict
    script = job.job_script()
    assert "MY.Marked = true" in script.splitlines()
    assert "-c 'echo first; " in script and "distributed.cli.dask_worker" in script
    assert f"Executable = {executable(job)}" in script.splitlines()  # HTCondorJob.executable


class RefusedJob(KeepsSubmitError, SLURMJob):
    """A worker job whose submission the scheduler refuses, as sbatch does a wrong partition."""

    submit_command = "sh -c 'echo \"sbatch: error: invalid partition specified: nope\" >&2; false'"


def test_a_refused_worker_job_is_kept_then_dropped_once() -> None:
    cluster = SLURMCluster(
        job_cls=RefusedJob,  # type: ignore[arg-type]
        cores=1,
        memory="1GB",
        scheduler_options={"host": "127.0.0.1"},
    )
    try:
        cluster.scale(jobs=1)
        deadline = time.monotonic() + 30
        while not (said := drop_refused(cluster)):  # Job.start's error; workers, worker_spec
            assert time.monotonic() < deadline, "the refused submission was not kept"
            time.sleep(0.1)
        assert said == ["sbatch: error: invalid partition specified: nope"]
        assert dict(workers_of(cluster)) == {} and cluster.worker_spec == {}
        assert drop_refused(cluster) == []  # said once
    finally:
        cluster.close()


def test_the_address_of_an_interface() -> None:
    assert interface_address("lo") == "127.0.0.1"  # distributed.utils.get_ip_interface
