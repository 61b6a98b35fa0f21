"""Trial scratch on a shared node: the user's own, unpredictable, removed; traps set for it fail."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from batchml._fs import PrivateFolderError
from batchml.hpo import run_study
from batchml.hpo.outcome import OUTCOME_ATTR, SCRATCH_ATTR
from batchml.hpo.scratch import trial_scratch
from batchml.hpo.storage import open_storage
from tests.unit import hpo_objectives as objectives
from tests.unit.neighbour import as_neighbour, needs_root, owner, shared_folder


@pytest.fixture
def shared() -> Iterator[Path]:
    with shared_folder() as folder:
        yield folder


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _site(tmp_path: Path, scratch: Path | str, keep: bool = False) -> str:
    site = tmp_path / "scratchy.yaml"
    site.write_text(
        f"extends: local\npaths:\n  scratch_dir: '{scratch}'\n  keep_scratch: {str(keep).lower()}\n"
    )
    return str(site)


def test_each_trial_gets_a_new_private_folder_removed_when_it_ends(shared: Path) -> None:
    with (
        trial_scratch(str(shared), "s-trial-0") as first,
        trial_scratch(str(shared), "s-trial-0") as again,
    ):
        (first / "command.log").write_text("log")
        root = shared / f"batchml-{os.getuid()}"
        assert first.parent == again.parent == root and first != again  # not predictable
        assert first.name.startswith("s-trial-0-")
        assert _mode(root) == _mode(first) == _mode(again) == 0o700
    assert not first.exists() and not again.exists()
    assert list(root.iterdir()) == []


def test_a_folder_kept_on_purpose_stays(shared: Path) -> None:
    with trial_scratch(str(shared), "s-trial-1", keep=True) as kept:
        (kept / "command.log").write_text("log")
    assert (kept / "command.log").read_text() == "log"


def test_site_variables_expand_where_the_trial_runs(
    shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHML_TEST_SCRATCH", str(shared))
    with trial_scratch("${BATCHML_TEST_SCRATCH:-/nonexistent}", "t") as folder:
        assert folder.parent.parent == shared
    monkeypatch.delenv("BATCHML_TEST_SCRATCH")
    with trial_scratch(f"${{BATCHML_TEST_SCRATCH:-{shared}}}", "t") as folder:
        assert folder.parent.parent == shared  # the default, as the shell would
    with (
        pytest.raises(PrivateFolderError, match="not an absolute folder"),
        trial_scratch("$BATCHML_TEST_SCRATCH/x", "t"),
    ):
        pass


def test_a_study_name_cannot_lead_the_folder_elsewhere(shared: Path) -> None:
    with trial_scratch(str(shared), "../../x/y-trial-0") as folder:
        assert folder.parent == shared / f"batchml-{os.getuid()}"


@needs_root
def test_a_folder_a_neighbour_made_in_its_place_is_refused(shared: Path) -> None:
    root = shared / f"batchml-{os.getuid()}"
    as_neighbour('mkdir -m 777 "$1"', str(root))
    with (
        pytest.raises(PrivateFolderError, match=f"{root} belongs to uid {owner(root)}") as caught,
        trial_scratch(str(shared), "s-trial-0"),
    ):
        pass
    assert "paths.scratch_dir" in (caught.value.hint or "")
    assert list(root.iterdir()) == []  # nothing of the victim's went there


@needs_root
def test_a_link_a_neighbour_planted_in_its_place_is_not_followed(
    shared: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "victim"
    mine.mkdir()
    (mine / "command.log").write_text("the victim's own file")
    tmp_path.chmod(0o755)  # the neighbour can see the target, as in a home folder
    root = shared / f"batchml-{os.getuid()}"
    as_neighbour('ln -s "$1" "$2"', str(mine), str(root))
    with (
        pytest.raises(PrivateFolderError, match="is not a folder"),
        trial_scratch(str(shared), "s-trial-0"),
    ):
        pass
    assert [p.name for p in mine.iterdir()] == ["command.log"]
    assert (mine / "command.log").read_text() == "the victim's own file"


def test_a_study_leaves_no_scratch_behind_and_keeps_it_when_asked(
    shared: Path, tmp_path: Path
) -> None:
    run_study(objectives.quadratic, n_trials=2, site=_site(tmp_path, shared), progress=False,
              study_name="tidy")  # fmt: skip
    assert list((shared / f"batchml-{os.getuid()}").iterdir()) == []
    study = run_study(objectives.writes_in_scratch, n_trials=1, site=_site(tmp_path, shared, True),
                      progress=False, study_name="kept")  # fmt: skip
    kept = Path(study.trials[0].user_attrs[SCRATCH_ATTR])
    assert kept.parent == shared / f"batchml-{os.getuid()}" and _mode(kept) == 0o700
    assert (kept / "written.txt").read_text() == str(kept)  # what the objective saw


@needs_root
def test_a_study_stops_with_the_reason_when_its_scratch_is_taken(
    shared: Path, tmp_path: Path
) -> None:
    as_neighbour('mkdir "$1"', str(shared / f"batchml-{os.getuid()}"))
    journal = str(tmp_path / "taken.journal")
    with pytest.raises(PrivateFolderError, match="belongs to uid"):
        run_study(objectives.quadratic, n_trials=1, site=_site(tmp_path, shared), progress=False,
                  study_name="taken", storage=journal)  # fmt: skip
    trials = optuna.load_study(study_name="taken", storage=open_storage(journal, "taken")).trials
    # failed for the reason, not "preempted" and retried into the same wall
    assert [(t.state, t.user_attrs[OUTCOME_ATTR]) for t in trials] == [(TrialState.FAIL, "raised")]
