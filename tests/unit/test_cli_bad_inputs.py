"""Every bad command line: one clear message, exit 2, no traceback, no hang, nothing left behind.

The battery (tests/unit/bad_input_cases.py) runs each case through
``batchml.cli.main`` in a sandbox where HOME, the XDG folders, TMPDIR and the
registry point into an empty folder, under a timeout; it checks the exit
status, the message, the error and hint lines of batchml's one error boundary
(or argparse's usage line), and that no file or folder appeared or changed
but those a case may make. A test checks the battery reaches every command
and option of ``build_parser()``, so a new command without cases fails it.
A few cases run as real processes too: a traceback and an exit status are
what a shell sees.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import subprocess
import sys
import traceback
from collections import defaultdict
from pathlib import Path

import pytest

from batchml.cli import build_parser
from tests.unit import bad_input_fixtures
from tests.unit.bad_input_cases import CASES, Case
from tests.unit.cli_sandbox import SANDBOX_ENV, WORK, enter, run, snapshot, write_files

SHARED = (
    bad_input_fixtures.REGISTRY,
    bad_input_fixtures.JOURNAL,
    bad_input_fixtures.ROOT_FILE,
    bad_input_fixtures.FAKE_PACKAGE,
    bad_input_fixtures.SERVABLE,
    bad_input_fixtures.FAKE_SERVER,
    "garbage.bin",
    "empty.txt",
    "folder",
)
NOT_BAD_INPUT = {"--version", "-h", "--help"}  # they print and exit 0 by design


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared fixtures, written once; and the heavy imports, done outside any sandbox
    (matplotlib's font cache and dask-jobqueue's config file are theirs, written on import)."""
    import dask_jobqueue  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import onnxruntime  # noqa: F401

    import batchml.hpo  # noqa: F401

    folder = tmp_path_factory.mktemp("bad-input-fixtures")
    bad_input_fixtures.build(folder)
    return folder


def sandbox(case: Case, built: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = enter(root, monkeypatch)
    monkeypatch.syspath_prepend(str(work))  # as `python -m batchml.cli` run there has it
    bad_input_fixtures.copy(built, work, SHARED)
    write_files(work, case.files)
    for variable, value in case.env.items():
        monkeypatch.setenv(variable, value)
    return work


def left_behind(case: Case, paths: tuple[str, ...]) -> list[str]:
    """The created or changed paths the case is not allowed to leave."""
    return [p for p in paths if not any(fnmatch.fnmatch(p, g) for g in case.may_create)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(
    case: Case,
    built: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox(case, built, tmp_path, monkeypatch)
    outcome = run(case.argv, tmp_path, capsys)
    if outcome.raised is not None:
        shown = "".join(traceback.format_exception(outcome.raised))
        pytest.fail(f"a traceback reached the user:\n{shown}")
    said = outcome.err if case.status else outcome.out
    assert outcome.status == case.status, said
    assert case.says in said, said
    if case.usage:
        assert said.startswith("usage: batchml"), said
    elif case.status:
        lines = said.splitlines()
        assert lines[0].startswith("error: "), said
        assert any(line.startswith("hint: ") for line in lines[1:]), said
    assert "-v" in case.argv or "Traceback" not in outcome.err  # -v logs one on purpose
    assert not left_behind(case, outcome.created + outcome.changed)


def command_nodes(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every parser of the grammar by its command words: () the top, ('hpo', 'run') a leaf."""
    nodes = {path: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                nodes |= command_nodes(child, (*path, name))
    return nodes


def path_of(argv: tuple[str, ...], nodes: dict[tuple[str, ...], argparse.ArgumentParser]) -> tuple:
    """The command words of a command line, as far as they go."""
    path: tuple[str, ...] = ()
    for word in argv:
        if (*path, word) in nodes:
            path = (*path, word)
    return path


def options_of(parser: argparse.ArgumentParser) -> list[list[str]]:
    return [
        action.option_strings
        for action in parser._actions
        if action.option_strings and not set(action.option_strings) & NOT_BAD_INPUT
    ]


def test_battery_reaches_every_command_and_option() -> None:
    nodes = command_nodes(build_parser())
    commands: dict[tuple[str, ...], int] = defaultdict(int)
    words: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for case in CASES:
        path = path_of(case.argv, nodes)
        commands[path] += 1
        for depth in range(len(path) + 1):
            words[path[:depth]] |= {w.partition("=")[0] for w in case.argv}
    leaves = [p for p, parser in nodes.items() if not parser._subparsers]
    assert [leaf for leaf in leaves if not commands[leaf]] == []
    missing = [
        f"{' '.join(path)} {strings[-1]}"
        for path, parser in nodes.items()
        for strings in options_of(parser)
        if not words[path] & set(strings)
    ]
    assert missing == []
    assert len(CASES) >= 300, len(CASES)


def test_every_case_is_different_and_expects_a_message() -> None:
    seen = [(c.argv, tuple(sorted(c.files.items())), tuple(c.env.items())) for c in CASES]
    assert len(set(map(repr, seen))) == len(seen)
    assert [c.id for c in CASES if len(c.says) < 5] == []


SUBPROCESS = {  # what only a real process shows: the exit status and stderr a shell gets
    "cluster up --jobs=0": "argument --jobs: ",
    "hpo best pending --storage s.journal": "study 'pending' has no completed trial yet",
    "hpo run s.yaml": "search_space.lr: a log scale needs low > 0",
    "package bench folder": "folder has no metadata.json",
    "demo --workdir /dev/null/x": "--workdir /dev/null/x cannot be made",
    "registry --root reg verify nosuch": "no model 'nosuch' in reg",
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", SUBPROCESS)
def test_bad_input_in_a_real_process(command: str, built: Path, tmp_path: Path) -> None:
    case = next(c for c in CASES if " ".join(c.argv) == command and SUBPROCESS[command] in c.says)
    work = tmp_path / WORK
    for relative in SANDBOX_ENV.values():
        (tmp_path / relative).mkdir(parents=True, exist_ok=True)
    (tmp_path / SANDBOX_ENV["BATCHML_REGISTRY"]).rmdir()
    work.mkdir(exist_ok=True)
    bad_input_fixtures.copy(built, work, SHARED)
    write_files(work, case.files)
    env = {k: str(tmp_path / v) for k, v in SANDBOX_ENV.items()}
    env |= {"PATH": os.environ["PATH"], "PYTHONPATH": os.getcwd(), "LANG": "C.UTF-8"}
    before = snapshot(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "batchml.cli", *case.argv],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == case.status, result.stderr
    assert case.says in result.stderr
    first = "usage: batchml" if case.usage else "error: "
    assert result.stderr.startswith(first), result.stderr
    assert case.usage or "\nhint: " in result.stderr
    created = sorted(set(snapshot(tmp_path)) - set(before))
    assert left_behind(case, tuple(p for p in created if p not in DASK_JOBQUEUE_OWN)) == []


# dask-jobqueue writes its default configuration into the home when first imported (any
# command that imports batchml.hpo): its file, not one of batchml's
DASK_JOBQUEUE_OWN = ("home/.config/dask", "home/.config/dask/jobqueue.yaml")
