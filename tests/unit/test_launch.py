"""batchml.backends.launch: every way a user writes a command starts, alone and under torchrun."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from batchml.backends import Backend, JobSpec, JobState, backend_for
from batchml.backends.launch import launch_words, script_position
from batchml.config.resources import Resources
from batchml.config.site_lookup import load_site
from batchml.errors import InvalidValue

COMMANDS = Path(__file__).parent / "commands"
PY = "/site/venv/bin/python3"  # the job's Python (`batchml submit --python`)
# A `--` right after the script, a flag torchrun also has, and text a shell would run.
ARGS = ["--", "--nproc_per_node=9", "a b; $(touch pwned) `touch pwned` 'q' \"qq\"\nline 2"]


@pytest.mark.parametrize(
    "command",
    [
        ["python", "train.py", *ARGS],  # the README's example
        ["python3", "-u", "-m", "pkg.train"],
        ["/opt/env/bin/python3.11", "-X", "dev", "train.py"],
        ["python3.12", "-c", "import pkg"],
        ["./run.sh", *ARGS],
        ["bash", "wrapper.sh", "--lr", "1e-3"],
        ["nvidia-smi"],
    ],
)
def test_a_named_program_runs_as_written_and_under_torchrun_without_python(
    command: list[str],
) -> None:
    assert launch_words(command, PY, torchrun=False) == command
    assert launch_words(tuple(command), PY, torchrun=True) == ["--no-python", "--", *command]


@pytest.mark.parametrize(
    ("command", "ranks"),
    [
        (["train.py", *ARGS], ["--", "train.py", *ARGS]),
        (["sub dir/my train.py"], ["--", "sub dir/my train.py"]),
        (["-m", "pkg.train", *ARGS], ["--module", "--", "pkg.train", *ARGS]),
        # torchrun cannot pass interpreter options: the job's Python is named for it.
        (["-u", "train.py"], ["--no-python", "--", PY, "-u", "train.py"]),
        (["-c", "print(1)"], ["--no-python", "--", PY, "-c", "print(1)"]),
    ],
)
def test_a_script_module_or_option_given_directly_runs_with_the_jobs_python(
    command: list[str], ranks: list[str]
) -> None:
    assert launch_words(command, PY, torchrun=False) == [PY, *command]
    assert launch_words(command, PY, torchrun=True) == ranks


@pytest.mark.parametrize(
    ("command", "message"),
    [([], "is empty"), ([""], "is empty"), (["-m"], "names no module"), (["-m", ""], "no module")],
)
def test_a_command_without_a_program_or_module_is_refused(command: list[str], message: str) -> None:
    for torchrun in (False, True):
        with pytest.raises(InvalidValue, match=message) as caught:
            launch_words(command, PY, torchrun=torchrun)
        assert "train" in (caught.value.hint or "")  # an example of a command that works


@pytest.mark.parametrize(
    ("command", "position"),
    [
        (["python", "train.py", "--lr", "1"], 1),
        (["/opt/env/bin/python3.11", "-X", "dev", "-W", "error", "-uO", "train.py"], 6),
        (["python3", "-Wdefault", "--check-hash-based-pycs", "always", "t.py"], 4),
        (["python", "--", "-odd name.py"], 2),
        (["train.py", "a.py"], 0),
        (["-u", "train.py"], 1),
        (["python3", "-u", "-m", "pkg.train"], None),
        (["python", "-um", "pkg"], None),
        (["python", "-c", "import x", "y.py"], None),
        (["python", "-", "y.py"], None),
        (["-m", "pkg"], None),
        (["python"], None),
        (["./run.sh", "x.py"], None),
        (["bash", "wrapper.sh"], None),
        (["pythonista", "x.py"], None),
    ],
)
def test_the_script_of_a_command_is_found_after_its_interpreter_options(
    command: list[str], position: int | None
) -> None:
    assert script_position(command) == position


# ------------------------------------------------- the forms run: job.sh, real torchrun


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The folder a user submits from: the script, the wrapper, and nothing else."""
    folder = tmp_path / "my analysis"
    folder.mkdir()
    for name in ("rank_record.py", "wrapper.sh"):
        shutil.copy2(COMMANDS / name, folder / name)
    return folder


def test_every_form_runs_two_ranks_through_the_job_script(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    other = tmp_path / "other python" / "python3.11"  # an interpreter that is not the job's
    other.parent.mkdir()
    other.symlink_to(sys.executable)
    forms = {
        "python script": ["python", "rank_record.py"],
        "interpreter path with options": [str(other), "-u", "-m", "rank_record"],
        "script given directly": ["rank_record.py"],
        "module given directly": ["-m", "rank_record"],
        "wrapper as a program": ["./wrapper.sh"],
        "wrapper through its shell": ["sh", "wrapper.sh"],
    }
    backend = backend_for(load_site("local").site)
    jobs = {}
    for index, (form, words) in enumerate(forms.items()):
        out = tmp_path / f"ranks-{index}"
        out.mkdir()
        job = JobSpec(
            name=form,
            command=(*words, *ARGS),
            resources=Resources.from_site(backend.site, gpus=2),
            workdir=tmp_path / f"job-{index}",
            python=sys.executable,
            cwd=source,
            environment={
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                "CUDA_VISIBLE_DEVICES": "3,5",
                "RANKS_OUT": str(out),
            },
        )
        (jobs[form],) = backend.submit(job)
    finished = _wait(backend, list(jobs.values()))
    for index, (form, job_id) in enumerate(jobs.items()):
        log = (tmp_path / f"job-{index}" / "job.log").read_text()[-3000:]
        assert finished[job_id] is JobState.COMPLETED, f"{form}: {log}"
        records = [
            json.loads(p.read_text()) for p in sorted((tmp_path / f"ranks-{index}").iterdir())
        ]
        assert [(r["rank"], r["local_rank"], r["world_size"], r["gpu"]) for r in records] == [
            (0, 0, 2, "3"), (1, 1, 2, "5"),
        ], form  # fmt: skip
        for record in records:
            assert record["argv"] == ARGS and record["cwd"] == str(source), (form, record)
            assert bool(record["wrapped"]) == form.startswith("wrapper"), form
        if form == "interpreter path with options":
            assert {r["python"] for r in records} == {str(other)}  # the one the user named
    assert not list(tmp_path.rglob("pwned"))


def test_a_job_whose_folder_this_node_lacks_runs_in_its_workdir_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    backend = backend_for(load_site("local").site)
    job = JobSpec(
        name="elsewhere", command=("sh", "-c", "pwd > where"), resources=Resources(),
        workdir=tmp_path / "job", cwd=tmp_path / "not here",
    )  # fmt: skip
    (job_id,) = backend.submit(job)
    assert _wait(backend, [job_id])[job_id] is JobState.COMPLETED
    assert (tmp_path / "job" / "where").read_text().strip() == str(tmp_path / "job")
    log = (tmp_path / "job" / "job.log").read_text()
    assert f"{tmp_path / 'not here'} (where the job was submitted) is not visible" in log


def _wait(backend: Backend, ids: list[str], limit: float = 240) -> dict[str, JobState]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        states = {i: info.state for i, info in backend.status(ids).items()}
        if all(state.finished for state in states.values()):
            return states
        time.sleep(0.2)
    raise AssertionError(f"jobs {ids} did not finish within {limit} s")
