"""Damaged versions: every reader names them (file, problem, fix); nothing drops them silently."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from batchml.cli import main
from batchml.registry import CorruptVersion, NotFound, Registry
from batchml.registry.layout import TOMBSTONE
from batchml.registry.manifest import MANIFEST, MARKER

Damage = Callable[[Path], Path]


def not_json(folder: Path) -> Path:
    (folder / MARKER).chmod(0o644)
    (folder / MARKER).write_bytes(b'{"version": 3, "manifest_sha')  # a torn copy
    return folder / MARKER


def manifest_missing(folder: Path) -> Path:
    (folder / MANIFEST).unlink()
    return folder / MANIFEST


def marker_deleted(folder: Path) -> Path:
    (folder / MARKER).unlink()  # an rsync interrupted before it copied COMMITTED
    return folder / MARKER


DAMAGES = {
    "COMMITTED not JSON": (not_json, "is not valid JSON"),
    "manifest.json missing": (manifest_missing, "missing"),
    "COMMITTED deleted": (marker_deleted, "missing, so the version is invisible"),
}


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "registry")
    for loss in (0.5, 0.2, 0.9):
        registry.publish("jets", f"{loss}".encode(), metrics={"loss": loss})
    registry.alias("jets", "production", 2)
    registry.publish("taus", b"tau")
    return registry


def cli(registry: Registry, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["--no-color", "registry", "--root", str(registry.root), *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


def one_error(err: str, says: str) -> None:
    """An error line naming the problem, a hint line, nothing else."""
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("error: ") and says in lines[0], err
    assert lines[1].startswith("hint: "), err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def restore(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = folder / rel
        if not path.exists() or path.read_bytes() != data:
            path.unlink(missing_ok=True)
            path.write_bytes(data)


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_version_is_named_by_every_reader_and_comes_back_when_restored(
    registry: Registry, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    folder = registry.layout.version("jets", 3)
    original = snapshot(folder)
    do, what = DAMAGES[damage]
    path = do(folder)

    [problem] = registry.verify()
    assert problem.path == path and problem.problem.startswith(what)
    assert "restore it from the copy this registry came from" in problem.fix
    assert registry.damaged("jets") == [problem]
    assert registry.versions("jets") == [1, 2]
    assert [v.version for v in registry.list("jets")] == [1, 2]
    assert registry.get("jets/2").version == 2
    for ref in ("jets/3", "jets"):  # the newest is damaged: "latest" names it, not jets/2
        with pytest.raises(CorruptVersion, match=f"jets/3 is damaged: {path}: {what}"):
            registry.get(ref)

    status, out, _ = cli(registry, capsys, "verify")
    assert status == 1 and f"corrupt {path}: {what}" in out and "; fix: restore it" in out
    assert len(out.splitlines()) == 1
    status, out, _ = cli(registry, capsys, "list", "jets")
    rows = [line.split()[0] for line in out.splitlines()[1:]]
    assert status == 0 and rows == ["1", "2", "damaged"]
    assert f"damaged {path}: {what}" in out
    status, out, _ = cli(registry, capsys, "list")
    assert status == 0 and out.splitlines()[1].split()[:3] == ["jets", "2", "2"]
    assert f"damaged {path}" in out
    assert cli(registry, capsys, "show", "jets/2")[0] == 0
    assert cli(registry, capsys, "history", "jets")[0] == 0
    status, _, err = cli(registry, capsys, "show", "jets/3")
    assert status == 1
    one_error(err, f"jets/3 is damaged: {path}: {what}")

    report = registry.gc(keep=0, metric="loss")  # every ranked, unaliased version but jets/3
    assert report.versions == [registry.layout.version("jets", 1)]
    assert report.damaged == [] and report.damaged_kept == [problem]
    assert not (folder / TOMBSTONE).exists()

    restore(folder, original)
    assert registry.verify() == [] and registry.versions("jets") == [2, 3]


def test_one_survey_names_a_version_whose_notes_are_damaged_and_lists_the_others(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.annotate("jets/2", tags=["kept"])
    notes = registry.layout.annotations("jets", 2)
    notes.write_text("[]")  # valid JSON, but not the object of notes a version has

    survey = registry.survey("jets")
    assert [v.version for v in survey.versions] == [1, 3]
    [problem] = survey.damaged
    assert (problem.path, problem.problem) == (notes, "is not a JSON object")
    assert "delete it (it holds only notes)" in problem.fix
    assert registry.damaged("jets") == [problem]
    assert [v.version for v in registry.list("jets")] == [1, 3]

    status, out, _ = cli(registry, capsys, "list", "jets")
    assert status == 0 and [line.split()[0] for line in out.splitlines()] == [
        "version",
        "1",
        "3",
        "damaged",
    ]
    assert f"damaged {notes}: is not a JSON object; fix: restore it" in out


def test_gc_removes_a_damaged_version_only_when_asked_and_never_an_aliased_one(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    aliased = marker_deleted(registry.layout.version("jets", 2))  # production points here
    unaliased = marker_deleted(registry.layout.version("jets", 3))
    with pytest.raises(CorruptVersion, match=f"jets/2 is damaged: {aliased}"):
        registry.get("jets@production")  # named, never another version in its place

    status, out, _ = cli(registry, capsys, "gc", "--keep", "0", "--dry-run")
    assert status == 0 and "damaged version" not in out.replace("kept damaged", "")
    assert out.count("kept damaged") == 2
    status, out, _ = cli(registry, capsys, "gc", "--damaged")
    assert status == 0
    assert f"removed damaged version {unaliased.parent}" in out
    assert f"kept damaged {aliased}: missing" in out
    assert [p.name for p in unaliased.parent.iterdir()] == [TOMBSTONE]
    assert sorted(p.name for p in aliased.parent.iterdir()) == ["files", MANIFEST]
    assert [p.path for p in registry.verify()] == [aliased]
    assert registry.publish("jets", b"next").version == 4  # the number stays taken


def test_verify_and_history_of_a_missing_model_exit_2_naming_where_they_looked(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(NotFound, match=f"no model 'nope' in {registry.root}"):
        registry.verify("nope")
    for command in ("verify", "history"):
        status, _, err = cli(registry, capsys, command, "nope")
        assert status == 2
        one_error(err, f"no model 'nope' in {registry.root}")
        assert "hint: its models: jets, taus" in err
    assert cli(registry, capsys, "verify", "taus")[0] == 0


def test_a_damaged_alias_or_registry_file_is_named_not_a_traceback(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = registry.layout.alias("jets", "production")
    change = folder / "00000001.json"
    change.chmod(0o644)
    change.write_bytes(b"\x00garbage")
    (folder / "current.json").unlink()
    for args in (("show", "jets@production"), ("history", "jets")):
        status, _, err = cli(registry, capsys, *args)
        assert status == 1
        one_error(err, f"{change} is not valid JSON")
    assert cli(registry, capsys, "show", "taus/1")[0] == 0

    marker = registry.layout.format_file
    marker.chmod(0o644)
    marker.write_text("[1, 2]")
    status, _, err = cli(registry, capsys, "list")
    assert status == 1
    one_error(err, f"{marker} does not declare a batchml-registry format version")


def test_an_alias_move_to_a_version_that_never_committed_does_not_count(
    registry: Registry,
) -> None:
    """What a publish killed between its alias moves and its commit leaves (registry/commit.py)."""
    published = registry.publish("jets", b"4", aliases=["production"])
    folder = published.path
    (folder / MARKER).unlink()
    (folder / "PUBLISHING").write_text(json.dumps({"owner": "elsewhere.cern.ch-1-abcd"}))
    assert registry.aliases("jets") == {"production": 2}
    assert registry.versions("jets") == [1, 2, 3] and registry.verify() == []
    moves = [(r["from"], r["to"], r["uncommitted"]) for r in registry.history("jets")]
    assert moves == [(None, 2, False), (2, 4, True)]
    assert registry.gc().abandoned == []  # another host's publish: wait for the grace
    assert registry.gc(grace_s=-1).abandoned == [folder]
    assert sorted(p.name for p in folder.iterdir()) == ["PUBLISHING", TOMBSTONE]
    assert registry.aliases("jets") == {"production": 2}


def test_gc_tidies_the_note_a_publisher_killed_just_after_its_commit_leaves(
    registry: Registry,
) -> None:
    note = registry.layout.version("jets", 3) / "PUBLISHING"
    note.write_text(json.dumps({"owner": "elsewhere.cern.ch-1-abcd"}))
    assert registry.versions("jets") == [1, 2, 3]  # COMMITTED decides
    assert registry.gc(grace_s=-1).abandoned == []
    assert not note.exists() and registry.versions("jets") == [1, 2, 3]
    assert registry.verify() == []
