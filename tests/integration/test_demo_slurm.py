"""`batchml demo --site SITE` on the real Slurm: the same pipeline, trials as batch jobs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]


def test_demo_runs_its_trials_as_slurm_jobs(slurm_env: dict[str, str], tmp_path: Path) -> None:
    logs = Path(tempfile.mkdtemp(prefix="demo-logs-", dir=slurm_env["BATCHML_SLURM_SHARED"]))
    site = tmp_path / "demo-slurm.yaml"
    site.write_text(
        "scheduler: slurm\n"
        "defaults: {cores: 1, memory: 1GB, walltime: 15m}\n"
        f"slurm: {{partition: {slurm_env['BATCHML_SLURM_PARTITION']}}}\n"
        "network: {interface: lo}\n"
        f"paths: {{log_dir: {logs}, shared_dir: {slurm_env['BATCHML_SLURM_SHARED']}}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "batchml.cli", "demo", "--site", str(site), "--workdir",
         str(tmp_path / "w"), "--events", "20000", "--trials", "4"],
        capture_output=True, text=True, timeout=280, check=False,
        env={**os.environ, "HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "on site demo-slurm (slurm)" in result.stdout
    assert "as demo-mlp@production" in result.stdout
    auc = float(result.stdout.split("test AUC ")[-1].split(";")[0])
    assert auc > 0.6
    registered = [p for p in logs.glob("*.err") if "Registered to" in p.read_text()]
    assert registered, f"no Slurm worker job registered with the study's scheduler ({logs})"
