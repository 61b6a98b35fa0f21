"""Multi-GPU jobs submitted as a user submits them, for the real-scheduler tests.

A folder holding the user's scripts, ``batchml submit train --gpus 2 -- COMMAND``
typed in it (the CLI, in a subprocess), and what each torchrun rank wrote:
its RANK, LOCAL_RANK, WORLD_SIZE, the job's CUDA_VISIBLE_DEVICES and the GPU
it picks from them (tests/unit/commands/rank_record.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from batchml.backends import Backend, JobInfo, JobState

COMMANDS = Path(__file__).parents[1] / "unit" / "commands"
# A `--` right after the script, a flag torchrun also has, and text a shell would run.
ARGS = ("--", "--nproc_per_node=9", "a b; $(touch pwned) `touch pwned` 'q' \"qq\"\nline 2")


def analysis_folder(parent: Path) -> tuple[Path, Path, Path]:
    """The user's folder (train.py, rank_record.py, wrapper.sh), the job's files folder and
    the ranks' folder, the last two writable by a job running as another user."""
    folder, workdir, ranks = parent / "my analysis", parent / "job", parent / "ranks"
    folder.mkdir()
    for name, as_name in (
        ("rank_record.py", "train.py"),
        ("rank_record.py", None),
        ("wrapper.sh", None),
    ):
        target = folder / (as_name or name)
        target.write_bytes((COMMANDS / name).read_bytes())
        target.chmod(0o755)
    for writable in (workdir, ranks):
        writable.mkdir()
        writable.chmod(0o777)
    return folder, workdir, ranks


def submit(site_file: Path, folder: Path, workdir: Path, ranks: Path, *command: str) -> str:
    """``batchml submit train --gpus 2 -- COMMAND ARGS`` typed in ``folder``; the job id."""
    typed = [
        "submit", "train", "--site", str(site_file), "--gpus", "2", "--workdir", str(workdir),
        "--env", f"RANKS_OUT={ranks}", "--", *command, *ARGS,
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "batchml.cli", *typed],
        cwd=folder, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"submitted 1 job\(s\) to \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert found, result.stdout
    return found.group(1)


def wait_finished(backend: Backend, job_id: str, workdir: Path, timeout_s: float) -> JobInfo:
    """The job once finished (or failing the test if it is held or outlives ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = backend.status([job_id])[job_id]
        if info.state.finished or info.state is JobState.HELD:
            break
        time.sleep(0.5)
    else:
        backend.cancel([job_id])
        pytest.fail(f"job {job_id} did not finish in {timeout_s:.0f} s\n{job_logs(workdir)}")
    if info.state is JobState.HELD:
        backend.cancel([job_id])
        pytest.fail(f"job {job_id} is held: {info.reason}")
    return info


def job_logs(workdir: Path) -> str:
    """The end of the job's output and error files, for a failure message."""
    logs = sorted(p for p in workdir.iterdir() if p.suffix in (".out", ".err"))
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)


def rank_records(ranks: Path) -> list[dict[str, Any]]:
    """What ranks 0 and 1 wrote, checked to be two ranks of one job, each on its own GPU."""
    records = [json.loads(p.read_text()) for p in sorted(ranks.glob("rank-*.json"))]
    assert [(r["rank"], r["local_rank"], r["world_size"]) for r in records] == [
        (0, 0, 2),
        (1, 1, 2),
    ]
    visible = records[0]["visible"]
    assert len(visible) == 2 and len(set(visible)) == 2, visible  # the job's two GPUs
    assert [r["visible"] for r in records] == [visible, visible]
    assert [r["gpu"] for r in records] == visible  # rank i takes the job's GPU i
    for record in records:
        assert record["argv"] == list(ARGS), record
    return records
