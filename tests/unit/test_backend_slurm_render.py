"""SlurmBackend without a Slurm: rendered scripts against golden files, the sbatch argv,
reading squeue/sacct JSON of two Slurm releases, polling failures (Slurm's commands
played by scripts on PATH), the worker jobs dask-jobqueue writes.

Set BATCHML_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change,
then review the diff.
"""

from __future__ import annotations

import gc
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from batchml._fs import PrivateFolderError
from batchml.backends import JobSpec, JobState, SchedulerError
from batchml.backends.slurm import SlurmBackend
from batchml.backends.slurm.backend import parse_sbatch_output
from batchml.backends.slurm.status import array_tasks, gpu_count, job_state, squeue_rows
from batchml.config.resources import Resources
from batchml.config.site_lookup import load_site
from batchml.config.site_schema import Network, Site
from batchml.errors import InvalidValue
from tests.unit.neighbour import as_neighbour, needs_root, shared_folder

GOLDEN = Path(__file__).parent.parent / "golden" / "slurm"
WORKDIR = Path("/scratch/batchml/run-1")
TEST_SITE = Site.model_validate(
    {
        "name": "test-hpc",
        "scheduler": "slurm",
        "defaults": {"cores": 4, "memory": "64GB", "gpus": 2, "walltime": "1d12h"},
        "slurm": {
            "partition": "gpu",
            "account": "physics",
            "gpu_type": "a100",
            "gpu_directive": "gpus-per-node",
            "memory_directive": "mem-per-gpu",
            "signal_before_timeout": None,
            "extra_directives": ["--reservation=ml"],
        },
        "environment": {"conda": "hep ml", "variables": {"OMP_NUM_THREADS": "4"}},
        "network": {"interface": "lo", "worker_ports": "40000-40100"},
        "paths": {"shared_dir": "/shared/batchml"},
    }
)


def site_named(name: str) -> Site:
    return TEST_SITE if name == TEST_SITE.name else load_site(name).site


def spec(site: Site, case: str) -> JobSpec:
    """The three shapes of plain job: one GPU, torchrun on four, an array on CPUs."""
    shapes: dict[str, dict[str, object]] = {
        "single": {"resources": Resources.from_site(site, gpus=1)},
        "torchrun": {"resources": Resources.from_site(site, gpus=4, mem_per_gpu="16GB")},
        "array": {
            "resources": Resources.from_site(site, gpus=0, walltime="20m"),
            "array_items": ("a.yaml", "b c.yaml", "$(x).yaml"),
        },
    }
    return JobSpec(
        name=f"{case} run",
        command=("train.py", "--config", "it's.yaml"),
        workdir=WORKDIR,
        **shapes[case],  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("case", ["single", "torchrun", "array"])
@pytest.mark.parametrize("site_name", ["slurm-generic", TEST_SITE.name])
def test_rendered_files_match_golden(site_name: str, case: str) -> None:
    rendered = SlurmBackend(site_named(site_name)).render(spec(site_named(site_name), case))
    assert rendered.submit_file == "job.sbatch"
    for name, text in rendered.files.items():
        golden = GOLDEN / f"{site_name}-{case}-{name}"
        if os.environ.get("BATCHML_UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text)
        assert text == golden.read_text(), f"{name} differs from {golden}"


def test_never_both_mem_and_mem_per_gpu() -> None:
    text = SlurmBackend(TEST_SITE).render(spec(TEST_SITE, "torchrun")).files["job.sbatch"]
    assert "#SBATCH --mem-per-gpu=15259M" in text
    assert "#SBATCH --mem=" not in text


def test_user_text_goes_on_the_sbatch_argv_not_in_the_script() -> None:
    name = "a; rm -rf ~\n$(b) 'c'"
    job = JobSpec(name=name, command=("x",), resources=Resources(), workdir=Path("/w/50%"))
    backend = SlurmBackend(TEST_SITE)
    assert name not in backend.render(job).files["job.sbatch"]
    assert backend.submit_command(job, Path("/w/50%/job.sbatch")) == [
        "sbatch",
        "--parsable",
        f"--job-name={name}",
        "--chdir=/w/50%",
        "--output=/w/50%%/slurm-%j.out",
        "--error=/w/50%%/slurm-%j.err",
        "/w/50%/job.sbatch",
    ]


@pytest.mark.parametrize("output", ["123\n", "123;cluster-a\n"])
def test_sbatch_parsable_output_gives_the_job_id(output: str) -> None:
    assert parse_sbatch_output(output) == "123"


def test_sbatch_output_without_an_id_is_an_error() -> None:
    with pytest.raises(SchedulerError, match="not a job id"):
        parse_sbatch_output("Submitted batch job 123")


# Records as squeue --json prints them: 22.05 (plain values) and 24.11 (structured).
SQUEUE_22 = {
    "jobs": [
        {"job_id": 7, "array_job_id": 0, "array_task_id": None, "array_task_string": "",
         "name": "a; b\nc", "job_state": "PENDING", "state_reason": "JobHeldUser",
         "user_id": 1000, "nodes": "", "start_time": 0, "end_time": 0,
         "tres_per_node": "gres:gpu:2", "tres_alloc_str": ""},
        {"job_id": 9, "array_job_id": 8, "array_task_id": 0, "array_task_string": "",
         "name": "arr", "job_state": "RUNNING", "state_reason": "None", "user_id": 1000,
         "nodes": "vm", "start_time": 1000, "end_time": 1300,
         "tres_per_node": "gres:gpu:1", "tres_alloc_str": "cpu=1,mem=100M,node=1"},
        {"job_id": 8, "array_job_id": 8, "array_task_id": None, "array_task_string": "2-3%2",
         "name": "arr", "job_state": "PENDING", "state_reason": "JobArrayTaskLimit",
         "user_id": 1000, "nodes": "", "start_time": 0, "end_time": 0,
         "tres_per_node": "gres:gpu:1"},
        {"job_id": 5, "array_job_id": 0, "array_task_id": None, "array_task_string": "",
         "name": "other user", "job_state": "COMPLETED", "user_id": 1001, "nodes": "vm",
         "start_time": 900, "end_time": 960, "tres_per_node": ""},
    ]
}  # fmt: skip
SQUEUE_24 = {
    "jobs": [
        {"job_id": 12, "array_job_id": {"set": True, "infinite": False, "number": 0},
         "array_task_id": {"set": False, "infinite": False, "number": 0},
         "array_task_string": "", "name": "ddp", "job_state": ["TIMEOUT"],
         "state_reason": "None", "user_id": 1000, "nodes": "gpu01",
         "start_time": {"set": True, "infinite": False, "number": 100},
         "end_time": {"set": True, "infinite": False, "number": 400},
         "node_count": {"set": True, "infinite": False, "number": 2},
         "tres_per_node": "gres/gpu:a100:4"},
    ]
}  # fmt: skip


def test_squeue_22_rows_expand_arrays_and_filter_the_user() -> None:
    rows = {row.id: row for row in squeue_rows(SQUEUE_22, user_id=1000, now=1060)}
    assert sorted(rows) == ["7", "8_0", "8_2", "8_3"]
    assert (rows["7"].state, rows["7"].gpus, rows["7"].name) == (JobState.HELD, 2, "a; b\nc")
    assert rows["7"].reason == "JobHeldUser" and rows["8_0"].reason is None
    running = rows["8_0"]
    assert (running.state, running.node, running.runtime.total_seconds()) == (
        JobState.RUNNING,
        "vm",
        60,
    )
    assert rows["8_3"].state is JobState.PENDING and rows["8_3"].runtime is None


def test_squeue_24_structured_numbers_and_state_lists() -> None:
    (row,) = squeue_rows(SQUEUE_24)
    assert (row.id, row.state, row.gpus, row.node) == ("12", JobState.FAILED, 8, "gpu01")
    assert row.runtime is not None and row.runtime.total_seconds() == 300


@pytest.mark.parametrize(
    ("spec_text", "tasks"),
    [("0-3", [0, 1, 2, 3]), ("2-3%2", [2, 3]), ("1,4-8:2", [1, 4, 6, 8]), ("", [])],
)
def test_array_task_strings(spec_text: str, tasks: list[int]) -> None:
    assert array_tasks(spec_text) == tasks


def test_states_and_gpu_counts() -> None:
    assert job_state("COMPLETING") is JobState.RUNNING
    assert job_state(["CANCELLED", "REQUEUED"]) is JobState.CANCELLED
    assert job_state("SOMETHING_NEW") is JobState.UNKNOWN
    assert gpu_count("", "cpu=2,gres/gpu=3") == 3


# A Slurm command played by a script: answer N of PROGRAM is the file PROGRAM.N (printed)
# or PROGRAM.N.err (printed on stderr, exit status 1); each call is logged in `calls`.
FAKE_COMMAND = r"""#!/bin/sh
here=$(dirname "$0"); name=$(basename "$0")
echo "$name" >> "$here/calls"
answer="$here/$name.$(grep -c "^$name\$" "$here/calls")"
if [ -f "$answer.err" ]; then cat "$answer.err" >&2; exit 1; fi
cat "$answer"
"""


def fake_slurm(
    folder: Path, monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[object]]
) -> Callable[[], list[str]]:
    """Put ``answers`` behind fake Slurm commands first on PATH; returns the calls made so far.

    An answer that is an Exception makes the command fail with its text on stderr.
    """
    folder.mkdir()
    for program, replies in answers.items():
        script = folder / program
        script.write_text(FAKE_COMMAND)
        script.chmod(0o755)
        for number, reply in enumerate(replies, start=1):
            if isinstance(reply, Exception):
                (folder / f"{program}.{number}.err").write_text(str(reply))
            else:
                text = reply if isinstance(reply, str) else json.dumps(reply)
                (folder / f"{program}.{number}").write_text(text)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    calls = folder / "calls"
    return lambda: calls.read_text().split() if calls.exists() else []


def test_a_few_polling_failures_show_the_last_state_then_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = SchedulerError("slurm_load_jobs error: Unable to contact slurm controller")
    answers: dict[str, list[object]] = {"squeue": [SQUEUE_22, down, down, down, down, SQUEUE_22]}
    calls = fake_slurm(tmp_path / "bin", monkeypatch, answers)
    backend = SlurmBackend(TEST_SITE, failures_tolerated=3)
    first = backend.status(["7"])
    for _ in range(3):
        assert backend.status(["7"]) == first
    with pytest.raises(SchedulerError, match=r"failed 4 times in a row.*Unable to contact"):
        backend.status(["7"])
    assert backend.status(["7"]) == first
    assert calls() == ["squeue"] * 6


def test_jobs_that_left_the_queue_come_from_sacct_where_accounting_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sacct = {
        "jobs": [
            {"job_id": 40, "name": "old", "state": {"current": "COMPLETED", "reason": "None"},
             "time": {"elapsed": 42}, "nodes": "gpu02", "array": {"job_id": 0, "task_id": None},
             "tres": {"allocated": [{"type": "gres", "name": "gpu", "count": 2}]}},
        ]
    }  # fmt: skip
    config = "ClusterName = x\nAccountingStorageType   = accounting_storage/slurmdbd\n"
    calls = fake_slurm(
        tmp_path / "bin",
        monkeypatch,
        {"squeue": [SQUEUE_22, SQUEUE_22], "scontrol": [config], "sacct": [sacct, sacct]},
    )
    backend = SlurmBackend(TEST_SITE)
    rows = backend.status(["7", "40", "41"])
    assert (rows["40"].state, rows["40"].gpus, rows["40"].runtime.total_seconds()) == (
        JobState.COMPLETED,
        2,
        42,
    )
    assert rows["41"].state is JobState.UNKNOWN and rows["7"].state is JobState.HELD
    backend.status(["40"])
    assert calls() == ["squeue", "scontrol", "sacct", "squeue", "sacct"]


def test_worker_jobs_use_the_resource_model_not_dask_jobqueue_defaults() -> None:
    backend = SlurmBackend(TEST_SITE)
    cluster = backend.cluster(Resources.from_site(TEST_SITE), security=False)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    header = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH -t 1-12:00:00" in header
    assert "#SBATCH --mem-per-gpu=30518M" in header
    assert "#SBATCH --gpus-per-node=a100:2" in header
    assert "#SBATCH -p gpu" in header and "#SBATCH -A physics" in header
    assert not [line for line in header if line.startswith("#SBATCH --mem=")]
    assert "--resources GPU=2" in script
    assert "--worker-port 40000:40100 --nanny-port 40000:40100" in script
    assert 40000 <= int(cluster.scheduler_address.rsplit(":", 1)[1]) <= 40100  # the site's range


def test_worker_jobs_get_the_site_environment_and_batchml_needs() -> None:
    resources = Resources(cores=1, walltime=timedelta(hours=2))
    cluster = SlurmBackend(shipped_generic()).cluster(resources, security=False)
    try:
        lines = cluster.job_script().splitlines()
    finally:
        cluster.close()
    start = lines.index("module load cuda")  # the site's environment first
    assert lines[start + 1] == '. "${HOME}/venvs/batchml"/bin/activate'
    assert "export DASK_DISTRIBUTED__WORKER__DAEMON=False" in lines  # trials start processes
    assert "export DASK_LOGGING__DISTRIBUTED=info" in lines  # whatever the driver's shell said
    # taken when the job starts, not when it was queued
    assert "export BATCHML_JOB_END=$(( $(date +%s) + 7200 ))" in lines


def test_unknown_cluster_option_is_an_error() -> None:
    with pytest.raises(InvalidValue, match="unknown cluster option 'n_workers'"):
        SlurmBackend(TEST_SITE).cluster(Resources(), n_workers=2)


def shipped_generic(**paths: str) -> Site:
    """The shipped slurm-generic site, on loopback (it names ib0, which this machine lacks)."""
    site = load_site("slurm-generic").site
    return site.model_copy(
        update={
            "network": Network(interface="lo"),
            "paths": site.paths.model_copy(update=paths),
        }
    )


def test_worker_credentials_go_to_a_private_folder_of_the_shared_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # slurm-generic's shared_dir: ${HOME}/batchml
    cluster = SlurmBackend(shipped_generic()).cluster(Resources(cores=1))
    try:
        script = cluster.job_script()
        folder = f"batchml-dask-tls-{os.getuid()}"
        named = re.findall(rf"\$\{{HOME\}}/batchml/{folder}/(\S+)", script)
        assert len(named) == 3, script  # paths the job expands on the node, not this machine's
        shared = tmp_path / "batchml"  # it did not exist: made for the user only
        assert _mode(shared) == _mode(shared / folder) == 0o700
        assert set(named) == {p.name for p in (shared / folder).iterdir()}
        assert {_mode(shared / folder / name) for name in named} == {0o600}
    finally:
        cluster.close()
    del cluster
    gc.collect()
    assert list((shared / folder).iterdir()) == []  # the credentials go with the cluster


@needs_root
def test_a_credentials_folder_a_neighbour_holds_is_refused(tmp_path: Path) -> None:
    with shared_folder() as shared:
        as_neighbour('mkdir "$1"', str(shared / f"batchml-dask-tls-{os.getuid()}"))
        backend = SlurmBackend(shipped_generic(shared_dir=str(shared)))
        with pytest.raises(PrivateFolderError, match="belongs to uid") as caught:
            backend.cluster(Resources(cores=1))
    assert "paths.shared_dir" in (caught.value.hint or "")


def test_a_shared_dir_that_cannot_be_made_is_named_with_the_fix(tmp_path: Path) -> None:
    backend = SlurmBackend(shipped_generic(shared_dir="/dev/null/batchml"))
    with pytest.raises(InvalidValue, match=r"paths\.shared_dir '/dev/null/batchml'") as caught:
        backend.cluster(Resources(cores=1))
    assert "compute nodes see" in (caught.value.hint or "")
    site = tmp_path / "no-shared.yaml"
    site.write_text("extends: slurm-generic\nnetwork: {interface: lo}\n"
                    "paths: {shared_dir: /dev/null/batchml}\n")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "batchml.cli", "cluster", "up", "--site", str(site)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: paths.shared_dir '/dev/null/batchml'")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)
