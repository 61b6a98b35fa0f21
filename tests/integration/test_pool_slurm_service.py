"""Smoke test of the Slurm cluster started by ``tests/services/pool-slurm.sh``.

Its point: a job it runs, submitted from the HTCondor pool as the pool's submit
user, runs the same Python as that user's HTCondor jobs and dask drivers (the
pool venv's), and sees the GPU it asked for.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.htcondor]

# Run by the pool's Python in the pool: that Python, then the same question asked of
# a one-GPU srun job of the pool's Slurm (whose config comes in argv: the pool's
# wrapper starts with a clean environment).
ASK_SLURM = """\
import json, os, subprocess, sys
SEEN = "import json, os, sys; print(json.dumps([sys.executable, sys.version, os.environ.get(K)]))"
me = [sys.executable, "-c", SEEN.replace("K", repr("CUDA_VISIBLE_DEVICES"))]
job = subprocess.run(["srun", "-t", "1", "--gres=gpu:1", *me], capture_output=True, text=True,
                     env={**os.environ, "SLURM_CONF": sys.argv[1]}, check=True)
print(json.dumps({"driver": [sys.executable, sys.version], "job": json.loads(job.stdout)}))
"""


def test_job_runs_the_pools_python_and_sees_its_gpu(
    htcondor_env: dict[str, str], pool_slurm_env: dict[str, str]
) -> None:
    pool_python = Path(htcondor_env["BATCHML_HTCONDOR_BIN"]) / "batchml-pool-python"
    answer = subprocess.run(
        [str(pool_python), "-c", ASK_SLURM, pool_slurm_env["BATCHML_POOL_SLURM_CONF"]],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    seen = json.loads(answer.stdout)
    assert seen["job"][:2] == seen["driver"]  # same interpreter, same version
    gpus = int(pool_slurm_env["BATCHML_POOL_SLURM_GPUS"])
    assert seen["job"][2] in [str(i) for i in range(gpus)]  # one GPU, named as Slurm does
