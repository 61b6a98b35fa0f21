"""Shared data with markup and control characters, shown by every command without harm.

A neighbour's metric named ``[/bold]``, an alias moved under ``USER='[/x]'``
or an ESC sequence in a description must neither crash another user's
`registry list` (rich MarkupError) nor reach their terminal raw: each command
exits 0 and shows the text with its escapes visible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
import uproot
from optuna.distributions import CategoricalDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from batchml.cli import main
from batchml.cli.terminal_text import safe
from batchml.registry import Registry

MARKUP = "[/bold]"
ESC = "\x1b]0;owned\x07\x1b[2J"
HOSTILE = f"{MARKUP}{ESC}[red]x\u202e"


def shown(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """stdout of one command, which must succeed and print no raw control character."""
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    return out


def test_safe_escapes_markup_and_shows_controls() -> None:
    assert safe("[/bold]") == "\\[/bold]"
    assert safe("a\x1b[31mb\tc\nd\u202e") == "a\\x1b[31mb\\tc\\nd\\u202e"
    assert safe("line\nnext", keep_newlines=True) == "line\nnext"
    assert safe("ends in \\") == "ends in \\\\"


@pytest.fixture
def registry_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry a hostile neighbour wrote to: names, values and their login all markup."""
    for variable in ("LOGNAME", "USER"):
        monkeypatch.setenv(variable, f"$USER='{MARKUP}'{ESC}")
    registry = Registry(tmp_path / "registry")
    registry.publish(
        "jets",
        b"one",
        metrics={MARKUP: 0.5, ESC: 1.0},
        params={MARKUP: HOSTILE},
        description=HOSTILE,
    )
    registry.publish("jets", b"two", metrics={MARKUP: 0.25}, params={MARKUP: "[x]"})
    registry.alias("jets", "production", 2)
    return registry.root


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["list", "jets"],
        ["show", "jets/1"],
        ["history", "jets"],
        ["diff", "jets/1", "jets/2"],
    ],
    ids=["list", "list-versions", "show", "history", "diff"],
)
def test_registry_commands_show_hostile_values_escaped(
    registry_root: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    out = shown(capsys, ["registry", "--root", str(registry_root), *command])
    if command[0] in ("list", "diff", "show") and command != ["list"]:
        assert MARKUP in out
    if command[0] == "history":
        assert f"$USER='{MARKUP}'\\x1b]0;owned\\x07" in out
    if command[0] == "show":
        assert "\\x1b[2J" in out and "\\u202e" in out


def test_hpo_status_and_best_show_hostile_parameters_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "s.journal"
    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="s", storage=storage)
    space = {MARKUP: CategoricalDistribution([HOSTILE, "b"])}
    study.add_trial(
        optuna.trial.create_trial(params={MARKUP: HOSTILE}, distributions=space, value=1.0)
    )
    for command in ("status", "best"):
        out = shown(capsys, ["hpo", command, "s", "--storage", str(journal)])
        assert f"{MARKUP}={MARKUP}\\x1b]0;owned" in out


def test_site_show_and_list_show_hostile_values_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sites = tmp_path / "batchml" / "sites"
    sites.mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    hostile = sites / "[bold]x.yaml"
    hostile.write_text(
        'scheduler: local\ndescription: "\\e]0;owned\\a[/bold] shared"\n'
        "environment: {variables: {A: '[/red]'}}\n"
    )
    out = shown(capsys, ["site", "show", str(hostile)])
    assert "[/red]" in out and "\\x1b]0;owned\\x07" in out
    out = shown(capsys, ["site", "list"])
    assert "[bold]x" in out and "[/bold] shared" in out


def test_error_messages_show_control_characters_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text('scheduler: local\nenvironment: {variables: {"\\e[2J[/bold]": x}}\n')
    assert main(["site", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b[2J" in err and MARKUP in err


def test_data_inspect_shows_hostile_branch_names_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hostile.root"
    with uproot.recreate(path) as file:
        file["events"] = {f"pt{MARKUP}\x1b[31m": np.arange(3, dtype=np.float32)}
    out = shown(capsys, ["data", "inspect", str(path)])
    assert f"pt{MARKUP}\\x1b[31m" in out


def test_jobs_show_hostile_job_names_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # the local site keeps its job records there
    submit = ["submit", "train", "--site", "local", "--name", HOSTILE]
    shown(capsys, [*submit, "--workdir", str(tmp_path / "job"), "--", "true"])
    out = shown(capsys, ["jobs", "--site", "local"])
    assert f"{MARKUP}\\x1b]0;owned" in out
