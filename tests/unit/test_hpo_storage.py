"""Study names are matched whole, and the commands that only read a study create nothing."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from batchml.cli import main
from batchml.errors import ConfigError, InvalidValue
from batchml.hpo import run_study
from batchml.hpo.config import load_config

# Each passed pydantic's `pattern`, which matches anywhere in the text.
BAD_NAMES = ["a/b", "../../x", "/etc/cron.d/x", "name\n", "a\nb", ".hidden", "", "x" * 101]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_study_file_refuses_a_name_that_is_not_matched_whole(tmp_path: Path, name: str) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(f"study_name: {name!r}\nobjective: t.py:f\nn_trials: 1\n".replace("'", '"'))
    with pytest.raises(ConfigError) as caught:
        load_config(study)
    assert [p.field for p in caught.value.problems] == ["study_name"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_run_study_refuses_the_name_before_anything_is_made(fresh_home: Path, name: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        run_study(lambda trial, ctx: 0.0, n_trials=1, study_name=name, progress=False)
    assert repr(name) in caught.value.message and "[A-Za-z0-9]" in caught.value.message
    assert created(fresh_home) == []


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME with its XDG folders pointing inside it."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for variable, folder in (("XDG_DATA_HOME", ".local/share"), ("XDG_CONFIG_HOME", ".config")):
        monkeypatch.setenv(variable, str(home / folder))
    return tmp_path


def created(root: Path) -> list[str]:
    """Everything under ``root`` besides the empty HOME the fixture made."""
    return sorted(
        str(Path(folder, name).relative_to(root))
        for folder, dirs, files in os.walk(root)
        for name in dirs + files
        if Path(folder, name) != root / "home"
    )


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["hpo", "status", "higgs"], "'higgs'"),
        (["hpo", "best", "higgs"], "'higgs'"),
        (["hpo", "report", "higgs"], "'higgs'"),
        (["hpo", "resume", "higgs"], "'higgs'"),
        (["hpo", "status", "higgs", "--storage", "{root}/nonexistent/dir/x.journal"], "x.journal"),
        (["hpo", "best", "higgs", "--storage", "sqlite:///{root}/missing/s.db"], "s.db"),
        (["hpo", "status", "../../x"], "is not a study name"),
        (["hpo", "best", "a/b", "--storage", "{root}/s.journal"], "is not a study name"),
    ],
    ids=[
        "status", "best", "report", "resume", "missing-journal", "missing-sqlite",
        "traversal", "slash",
    ],
)  # fmt: skip
def test_read_only_commands_create_nothing_and_exit_2(
    fresh_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    names: str,
) -> None:
    monkeypatch.chdir(fresh_home / "home")
    assert main([word.format(root=fresh_home) for word in argv]) == 2
    err = capsys.readouterr().err
    assert names in err and "Traceback" not in err
    assert created(fresh_home) == []


def test_an_existing_study_is_read_without_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "s.journal"
    study = optuna.create_study(
        study_name="s", storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    study.add_trial(optuna.trial.create_trial(value=2.0))
    before = (sorted(os.listdir(tmp_path)), journal.read_bytes())
    assert main(["hpo", "status", "s", "--storage", str(journal)]) == 0
    assert "complete" in capsys.readouterr().out
    assert (sorted(os.listdir(tmp_path)), journal.read_bytes()) == before
