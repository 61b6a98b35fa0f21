"""Multi-GPU jobs as users write them, on the real one-node Slurm with 4 fake GPUs.

Each test types ``batchml submit train --gpus 2 -- COMMAND`` in a folder holding
the user's scripts, on a site whose environment is a venv (this test run's, which
has torch), and checks what each torchrun rank saw (tests/integration/ranks.py).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchml.backends import JobState
from batchml.backends.slurm import SlurmBackend
from batchml.config.site_lookup import load_site
from tests.integration.ranks import analysis_folder, job_logs, rank_records, submit, wait_finished

pytestmark = pytest.mark.slurm

WAIT_S = 120.0


@pytest.fixture(scope="module")
def site_file(slurm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test cluster as a site file, with this run's venv as the site's Python."""
    shared = slurm_env["BATCHML_SLURM_SHARED"]
    path = tmp_path_factory.mktemp("sites") / "test-slurm-venv.yaml"
    path.write_text(
        "description: the local test Slurm, jobs in this test run's venv\n"
        "scheduler: slurm\n"
        "defaults: {cores: 1, memory: 400MB, gpus: 1, walltime: 10m}\n"
        f"slurm: {{partition: {slurm_env['BATCHML_SLURM_PARTITION']}}}\n"
        f"environment: {{venv: {sys.prefix}}}\n"
        "network: {interface: lo}\n"
        f"paths: {{log_dir: {shared}/logs, shared_dir: {shared}}}\n"
    )
    return path


@pytest.fixture
def user_dir(slurm_env: dict[str, str]) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="launch-", dir=slurm_env["BATCHML_SLURM_SHARED"]))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize(
    "command",
    [
        ("python", "train.py"),  # the README's example
        ("python3", "-u", "-m", "rank_record"),
        ("-m", "rank_record"),
        ("./wrapper.sh",),
    ],
    ids=["python train.py", "python3 -u -m module", "-m module", "wrapper script"],
)
def test_a_two_gpu_job_runs_a_rank_per_gpu(
    site_file: Path, user_dir: Path, command: tuple[str, ...]
) -> None:
    folder, workdir, ranks = analysis_folder(user_dir)
    job_id = submit(site_file, folder, workdir, ranks, *command)
    backend = SlurmBackend(load_site(site_file).site)
    info = wait_finished(backend, job_id, workdir, WAIT_S)
    assert info.state is JobState.COMPLETED, job_logs(workdir)
    assert info.gpus == 2
    records = rank_records(ranks)
    assert all(gpu.isdigit() for gpu in records[0]["visible"])  # Slurm's gres indices
    assert {r["cwd"] for r in records} == {str(folder)}  # where `batchml submit` was typed
    assert {bool(r["wrapped"]) for r in records} == {command == ("./wrapper.sh",)}
    assert not list(user_dir.rglob("pwned"))
