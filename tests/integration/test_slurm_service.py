"""Smoke test of the local Slurm cluster that tests/services/slurm.sh starts.

The batchml Slurm tests trust this cluster to behave like a GPU site: jobs asking for
GPUs get CUDA_VISIBLE_DEVICES, others get none, and the node offers 8 CPUs and 4 GPUs
(each also as 4 shards).
If any of that breaks, these tests say so before the others fail in stranger ways.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

# States after which a job never runs again (squeue/scontrol JobState names).
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)
JOB_TIMEOUT_S = 60.0
CLI_TIMEOUT_S = 30.0


def run_cli(*argv: str) -> str:
    """Run a Slurm client with a time limit: a client of a dead slurmctld retries for long."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
    assert done.returncode == 0, f"{shlex.join(argv)} failed: {done.stderr.strip()}"
    return done.stdout


def job_state(job_id: str) -> str:
    """The JobState from `scontrol show job`, which still lists a job after it finished."""
    text = run_cli("scontrol", "-o", "show", "job", job_id)
    match = re.search(r"\bJobState=(\S+)", text)
    assert match, f"no JobState for job {job_id} in: {text!r}"
    return match.group(1)


def wait_for_job(job_id: str, timeout_s: float = JOB_TIMEOUT_S) -> str:
    """Poll until the job reaches a final state, so no test depends on a guessed sleep."""
    deadline = time.monotonic() + timeout_s
    state = job_state(job_id)
    while state not in FINAL_STATES:
        if time.monotonic() > deadline:
            subprocess.run(["scancel", job_id], timeout=CLI_TIMEOUT_S, check=False)
            pytest.fail(f"job {job_id} still {state} after {timeout_s:.0f}s")
        time.sleep(0.2)
        state = job_state(job_id)
    return state


def submit_env_dump(job_dir: Path, *sbatch_options: str) -> dict[str, str]:
    """Run a batch job that writes its environment, and return it: this is what a job sees."""
    env_file = job_dir / "job.env"
    script = job_dir / "dump_env.sh"
    script.write_text(f"#!/bin/sh\nenv -0 > {shlex.quote(str(env_file))}\n")
    script.chmod(0o755)
    out = run_cli(
        "sbatch",
        "--parsable",
        f"--chdir={job_dir}",
        f"--output={job_dir / 'slurm-%j.out'}",
        "--time=1",
        *sbatch_options,
        str(script),
    )
    job_id = out.strip().split(";")[0]  # --parsable prints "id" or "id;cluster"
    assert job_id.isdigit(), f"sbatch printed {out!r}"
    state = wait_for_job(job_id)
    assert state == "COMPLETED", f"job {job_id} ended {state}"
    return parse_env0(env_file.read_text())


def parse_env0(text: str) -> dict[str, str]:
    """NUL-separated `env -0` output, so values with newlines cannot break the parse."""
    pairs = (entry.partition("=") for entry in text.split("\0") if entry)
    return {key: value for key, _, value in pairs}


@pytest.fixture
def job_dir(slurm_env: dict[str, str]) -> Iterator[Path]:
    """A private folder in the shared area: the job (maybe another user) must write there."""
    path = Path(tempfile.mkdtemp(prefix="smoke-", dir=slurm_env["BATCHML_SLURM_SHARED"]))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_gpu_job_sees_the_gpus_it_asked_for(job_dir: Path) -> None:
    env = submit_env_dump(job_dir, "--gres=gpu:2")
    assert env.get("CUDA_VISIBLE_DEVICES") == "0,1"
    assert "SLURM_JOB_GPUS" in env
    assert len(env["SLURM_JOB_GPUS"].split(",")) == 2


def test_shard_job_sees_the_one_gpu_its_shards_are_of(
    job_dir: Path, slurm_env: dict[str, str]
) -> None:
    env = submit_env_dump(job_dir, "--gres=shard:2")
    assert env.get("SLURM_SHARDS_ON_NODE") == "2"
    assert env.get("CUDA_VISIBLE_DEVICES") in {"0", "1", "2", "3"}
    # A job's shards come from one GPU: more than one GPU has is never granted.
    per_gpu = int(slurm_env["BATCHML_SLURM_SHARDS_PER_GPU"])
    refused = subprocess.run(
        ["sbatch", "--test-only", f"--gres=shard:{per_gpu + 1}", "--wrap", "true"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "configuration is not available" in refused.stderr


def test_job_without_gres_sees_no_gpu(job_dir: Path) -> None:
    env = submit_env_dump(job_dir)
    assert "SLURM_JOB_ID" in env, "the dump does not come from a Slurm job"
    assert "CUDA_VISIBLE_DEVICES" not in env
    assert "SLURM_JOB_GPUS" not in env


def test_node_offers_the_published_cpus_and_gpus(slurm_env: dict[str, str]) -> None:
    node = slurm_env["BATCHML_SLURM_NODE"]
    text = run_cli("scontrol", "-o", "show", "node", node)
    fields = dict(re.findall(r"(?:^|\s)(NodeName|Gres|CPUTot)=(\S+)", text))
    assert fields.get("NodeName") == node
    gpus, shards = slurm_env["BATCHML_SLURM_GPUS"], slurm_env["BATCHML_SLURM_SHARDS_PER_GPU"]
    assert fields.get("Gres") == f"gpu:{gpus},shard:{int(gpus) * int(shards)}" == "gpu:4,shard:16"
    assert fields.get("CPUTot") == slurm_env["BATCHML_SLURM_CPUS"] == "8"
