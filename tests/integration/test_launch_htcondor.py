"""Multi-GPU jobs as users write them, on the real HTCondor pool with 4 simulated GPUs.

``batchml submit train --gpus 2 -- python train.py`` is typed on the host (the
htcondor2 bindings submit as the pool's user) in a folder the pool shares. The
job runs in the pool, as its user, with the Python the pool's jobs use: the
pool venv (Debian's torch), named in the site file as a site names its venv.
That torch is built without libuv, which torchrun's rendezvous cannot do
without: the site puts torch_without_libuv/ (see there) on PYTHONPATH. Each
torchrun rank writes what it saw (tests/integration/ranks.py).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchml.backends import JobState
from batchml.backends.htcondor import HTCondorBackend
from batchml.config.site_lookup import load_site
from tests.integration.ranks import analysis_folder, job_logs, rank_records, submit, wait_finished

pytestmark = pytest.mark.htcondor

WAIT_S = 180.0


@pytest.fixture(scope="module")
def site_file(htcondor_env: dict[str, str]) -> Iterator[Path]:
    """The pool as a site file whose environment is the venv the pool's jobs run, in a
    folder the pool shares with the torch_without_libuv/ shim beside it."""
    pool_python = Path(htcondor_env["BATCHML_HTCONDOR_BIN"]) / "batchml-pool-python"
    venv = subprocess.run(
        [str(pool_python), "-c", "import sys; print(sys.prefix)"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    folder = Path(
        tempfile.mkdtemp(prefix="launch-site-", dir=htcondor_env["BATCHML_HTCONDOR_SHARED"])
    )
    folder.chmod(0o755)
    shim = shutil.copytree(Path(__file__).with_name("torch_without_libuv"), folder / "shim")
    path = folder / "test-pool-venv.yaml"
    path.write_text(
        "description: the HTCondor test pool, jobs in its venv\n"
        "scheduler: htcondor\n"
        "defaults: {cores: 1, memory: 1GB, disk: 1GB, gpus: 1, walltime: 20m}\n"
        f"environment: {{venv: {venv}, variables: {{PYTHONPATH: {shim}}}}}\n"
        "network: {interface: lo}\n"
    )
    yield path
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def user_dir(htcondor_env: dict[str, str], request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder the pool shares; kept when the test failed, so that its job files can be read."""
    failed_before = request.session.testsfailed
    path = Path(tempfile.mkdtemp(prefix="launch-", dir=htcondor_env["BATCHML_HTCONDOR_SHARED"]))
    path.chmod(0o755)
    yield path
    if request.session.testsfailed == failed_before:
        shutil.rmtree(path, ignore_errors=True)


def test_python_train_py_on_two_gpus_runs_a_rank_per_gpu(site_file: Path, user_dir: Path) -> None:
    folder, workdir, ranks = analysis_folder(user_dir)
    job_id = submit(site_file, folder, workdir, ranks, "python", "train.py")
    info = wait_finished(HTCondorBackend(load_site(site_file).site), job_id, workdir, WAIT_S)
    assert info.state is JobState.COMPLETED, job_logs(workdir)
    assert info.gpus == 2
    records = rank_records(ranks)
    assert all(gpu.startswith("GPU-") for gpu in records[0]["visible"])  # HTCondor's GPU ids
    assert {r["cwd"] for r in records} == {str(folder)}
    assert not list(user_dir.rglob("pwned"))
