"""`batchml submit`, `jobs` and `jobs cancel` on the embedded default, as a user types them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batchml.backends import JobState, backend_for
from batchml.config.site_lookup import load_site

COMMANDS = Path(__file__).parent / "commands"


def batchml(
    *args: str, home: Path, cwd: Path, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchml.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(home), "PATH": path or os.environ["PATH"]},
        cwd=cwd,
        check=False,
    )


def test_dry_run_prints_every_file_and_the_filled_defaults(tmp_path: Path) -> None:
    result = batchml(
        "submit",
        "train",
        "--gpus",
        "0",
        "--dry-run",
        "--",
        "python",
        "train.py",
        "--tag",
        "$(id); rm -rf ~",
        home=tmp_path,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "from site 'local' defaults: cores=1, disk=10GB, memory=2GB, walltime=1d" in out
    assert "exec python train.py --tag '$(id); rm -rf ~'" in out
    assert "job.sh" in out and "run.sh" in out and "nothing submitted" in out
    assert not (tmp_path / "batchml-jobs").exists()


def test_submit_list_and_cancel(tmp_path: Path) -> None:
    result = batchml(
        "submit", "train", "--name", "sleepy", "--", "sleep", "60", home=tmp_path, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    job_id = re.search(r"to local: (\d+)", result.stdout).group(1)  # type: ignore[union-attr]
    listed = batchml("jobs", home=tmp_path, cwd=tmp_path).stdout
    row = next(line for line in listed.splitlines() if line.startswith(job_id))
    assert "running" in row and "sleepy" in row
    cancelled = batchml("jobs", "cancel", job_id, home=tmp_path, cwd=tmp_path)
    assert cancelled.returncode == 0 and cancelled.stdout == f"cancelled {job_id}\n"
    deadline = time.monotonic() + 20
    while "cancelled" not in batchml("jobs", "list", job_id, home=tmp_path, cwd=tmp_path).stdout:
        assert time.monotonic() < deadline, "the cancelled job never showed as cancelled"
        time.sleep(0.2)


def test_bad_submissions_exit_2_with_the_fix(tmp_path: Path) -> None:
    cases = [
        (("submit", "train"), "no command to run", "-- PROGRAM ARGS"),
        (("submit", "train", "--env", "NOEQUALS", "--", "true"), "has no '='", "KEY=VALUE"),
        (
            ("submit", "train", "--env", "1X=2", "--", "true"),
            "not an environment variable name",
            "letters",
        ),
        (
            ("submit", "nosuch", "--", "true"),
            "no local template named 'nosuch'",
            "use one of: train",
        ),
        (("submit", "train", "--walltime", "soon", "--", "true"), "not a duration", "'2h'"),
        (("submit", "train", "--gpus", "2", "--", "-m"), "names no module", "-m mypackage.train"),
        (
            ("submit", "train", "--site", "nowhere", "--", "true"),
            "no site named 'nowhere'",
            "known sites",
        ),
    ]
    for args, problem, fix in cases:
        result = batchml(*args, home=tmp_path, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert problem in result.stderr and fix in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "batchml-jobs").exists()  # nothing half-written


def test_the_readme_two_gpu_example_runs_two_ranks_where_it_was_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`batchml submit train --gpus 2 -- python train.py`, from the folder holding train.py."""
    monkeypatch.setenv("HOME", str(tmp_path))
    analysis, out = tmp_path / "analysis", tmp_path / "ranks"
    analysis.mkdir()
    out.mkdir()
    shutil.copy2(COMMANDS / "rank_record.py", analysis / "train.py")
    result = batchml(
        "submit", "train", "--gpus", "2", "--env", f"RANKS_OUT={out}",
        "--env", "CUDA_VISIBLE_DEVICES=0,1", "--", "python", "train.py", "--lr", "1e-3",
        home=tmp_path, cwd=analysis,
        path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # as a venv does
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    job_id = re.search(r"to local: (\d+)", result.stdout).group(1)  # type: ignore[union-attr]
    backend = backend_for(load_site("local").site)
    deadline = time.monotonic() + 120
    while not (state := backend.status([job_id])[job_id].state).finished:
        assert time.monotonic() < deadline, "the job did not finish in 120 s"
        time.sleep(0.2)
    logs = "".join(p.read_text() for p in (analysis / "batchml-jobs").glob("*/job.log"))
    assert state is JobState.COMPLETED, logs[-3000:]
    records = [json.loads(path.read_text()) for path in sorted(out.iterdir())]
    assert [(r["rank"], r["local_rank"], r["gpu"], r["argv"]) for r in records] == [
        (0, 0, "0", ["--lr", "1e-3"]), (1, 1, "1", ["--lr", "1e-3"]),
    ]  # fmt: skip


def test_cancel_of_an_id_batchml_did_not_start_exits_2_with_error_and_hint(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        for job_id in (str(stranger.pid), "999999999", "abc"):
            result = batchml("jobs", "cancel", job_id, home=tmp_path, cwd=tmp_path)
            assert result.returncode == 2, result
            assert result.stderr.startswith(f"error: no local job '{job_id}'")
            hint = "hint: its jobs are listed by `batchml jobs --site local`\n"
            assert result.stderr.endswith(hint) and result.stderr.count("\n") == 2
            assert result.stdout == ""
        assert stranger.poll() is None  # a process batchml did not start is never signalled
    finally:
        stranger.kill()
        stranger.wait()
