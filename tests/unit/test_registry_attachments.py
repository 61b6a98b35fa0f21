"""Attachments: write-once folders bound to one version, checked on read, removed with it by gc."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from batchml.cli import main
from batchml.errors import InvalidValue
from batchml.registry import CorruptVersion, ModelVersion, NotFound, Registry
from batchml.registry.manifest import FILES, MANIFEST, MARKER
from tests.unit.registry_children import WAIT_FOR_START, dead_pid, finish, spawn, start

KIND = "onnx-package"

ATTACH_ONCE = (
    WAIT_FOR_START
    + """
from pathlib import Path
from batchml.errors import InvalidValue
from batchml.registry import Registry
registry = Registry(sys.argv[2])
try:
    registry.attach(registry.get("jets/1"), "onnx-package", Path(sys.argv[3]))
except InvalidValue as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
"""
)


def package_folder(folder: Path, payload: bytes = b"onnx bytes") -> Path:
    (folder / "triton" / "jets" / "1").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(payload)
    (folder / "triton" / "jets" / "1" / "model.onnx").write_bytes(payload)
    (folder / "metadata.json").write_text('{"opset": 18}')
    return folder


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "registry")
    for loss in (0.5, 0.2, 0.9):
        registry.publish("jets", f"{loss}".encode(), metrics={"loss": loss})
    return registry


@pytest.fixture
def attached(registry: Registry, tmp_path: Path) -> ModelVersion:
    version = registry.get("jets/1")
    registry.attach(version, KIND, package_folder(tmp_path / "package"))
    return version


def staged(registry: Registry) -> list[Path]:
    return sorted(registry.layout.staging.iterdir())


def test_an_attachment_reads_back_verified_and_leaves_the_version_as_it_was(
    attached: ModelVersion, registry: Registry, tmp_path: Path
) -> None:
    again = registry.get("jets/1")
    assert again.digest == attached.digest and again.manifest == attached.manifest
    assert again.attachments() == [KIND] and registry.get("jets/2").attachments() == []
    attachment = again.attachment(KIND)
    assert attachment.path == registry.layout.attachment("jets", 1, KIND)
    assert attachment.files == ["metadata.json", "model.onnx", "triton/jets/1/model.onnx"]
    assert (attachment.folder / "model.onnx").read_bytes() == b"onnx bytes"
    assert not (attachment.folder / "model.onnx").stat().st_mode & 0o222  # read-only
    marker = json.loads((attachment.path / MARKER).read_bytes())
    assert marker["version_manifest_sha256"] == attached.digest
    assert marker["manifest_sha256"] == attachment.digest and marker["kind"] == KIND
    assert registry.verify() == [] and staged(registry) == []
    with pytest.raises(NotFound, match="jets/2 has no 'nothing' attachment"):
        registry.get("jets/2").attachment("nothing")


def test_a_second_attachment_of_a_kind_is_refused_and_leaves_nothing(
    attached: ModelVersion, registry: Registry, tmp_path: Path
) -> None:
    other = package_folder(tmp_path / "other", b"another model")
    with pytest.raises(InvalidValue, match="jets/1 already has a 'onnx-package' attachment") as err:
        registry.attach(attached, KIND, other)
    assert "write-once" in str(err.value.hint)
    assert staged(registry) == []
    assert (attached.attachment(KIND).folder / "model.onnx").read_bytes() == b"onnx bytes"
    assert registry.attach(attached, "notes", other).kind == "notes"  # another kind is fine
    assert attached.attachments() == ["notes", KIND]


def test_racing_attachers_one_wins_the_others_get_the_message(
    registry: Registry, tmp_path: Path
) -> None:
    barrier = tmp_path / "go"
    folders = [package_folder(tmp_path / f"p{i}", f"model {i}".encode()) for i in range(6)]
    children = [spawn(ATTACH_ONCE, str(barrier), str(registry.root), str(f)) for f in folders]
    start(barrier)
    results = finish(children)
    winners = [i for i, (status, _) in enumerate(results) if status == 0]
    assert len(winners) == 1, results
    for status, err in results:
        assert status in (0, 3), err
        assert status == 0 or "jets/1 already has a 'onnx-package' attachment" in err
    folder = registry.get("jets/1").attachment(KIND).folder
    assert (folder / "model.onnx").read_bytes() == f"model {winners[0]}".encode()
    assert staged(registry) == [] and registry.verify() == []


def test_a_tampered_attachment_is_named_by_verify_and_refused(
    attached: ModelVersion, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = registry.layout.attachment("jets", 1, KIND) / FILES / "model.onnx"
    changed.chmod(0o644)
    changed.write_bytes(b"onnx bytez")
    problems = registry.verify()
    assert [(p.path, p.problem) for p in problems] == [
        (changed, "sha256 differs from the manifest (content changed)")
    ]
    with pytest.raises(CorruptVersion, match=f"attachment of jets/1 is corrupt: {changed}"):
        attached.attachment(KIND)
    assert registry.get("jets/1").digest == attached.digest  # the version itself is sound
    assert main(["--no-color", "registry", "--root", str(registry.root), "verify"]) == 1
    assert f"corrupt {changed}: sha256 differs" in capsys.readouterr().out


def test_an_attachment_bound_to_another_digest_is_refused(
    attached: ModelVersion, registry: Registry
) -> None:
    marker = registry.layout.attachment("jets", 1, KIND) / MARKER
    bound = json.loads(marker.read_bytes())
    bound["version_manifest_sha256"] = registry.get("jets/2").digest
    marker.chmod(0o644)
    marker.write_text(json.dumps(bound))
    assert [p.path for p in registry.verify()] == [marker]
    with pytest.raises(CorruptVersion, match="binds the attachment to sha256:"):
        attached.attachment(KIND)


def test_show_lists_attachments(
    attached: ModelVersion, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--no-color", "registry", "--root", str(registry.root)]
    assert main([*args, "show", "jets/1", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["attachments"] == {KIND: str(attached.attachment(KIND).folder)}
    assert main([*args, "verify"]) == 0
    assert "ok 3 versions (1 attachments) of 1 models verified" in capsys.readouterr().out


def test_an_uncommitted_attachment_is_invisible_and_swept_by_gc(
    registry: Registry, tmp_path: Path
) -> None:
    # A writer killed before its rename: a staged folder with files and manifest, no COMMITTED.
    killed = registry.layout.staging / f"{socket.gethostname()}-{dead_pid()}-abcd"
    package_folder(killed / FILES)
    (killed / MANIFEST).write_text("{}")
    # A gc killed while removing an attachment: the folder in place, its COMMITTED gone.
    half = registry.layout.attachment("jets", 2, KIND)
    package_folder(half / FILES)
    assert registry.get("jets/2").attachments() == []
    with pytest.raises(NotFound, match="jets/2 has no 'onnx-package' attachment"):
        registry.get("jets/2").attachment(KIND)
    assert registry.verify() == []
    package = package_folder(tmp_path / "package")
    with pytest.raises(InvalidValue, match="left over from an interrupted gc"):
        registry.attach(registry.get("jets/2"), KIND, package)
    report = registry.gc()
    assert report.staging == [killed] and report.attachments == [half]
    assert not killed.exists() and not half.exists()
    assert registry.attach(registry.get("jets/2"), KIND, package).version == 2


def test_gc_removes_the_attachments_of_the_versions_it_removes(
    registry: Registry, tmp_path: Path
) -> None:
    package = package_folder(tmp_path / "package")
    for number in (1, 2, 3):
        registry.attach(registry.get(f"jets/{number}"), KIND, package)
    folders = [registry.layout.attachment("jets", n, KIND) for n in (1, 2, 3)]
    dry = registry.gc(keep=1, metric="loss", dry_run=True)
    assert dry.attachments == [folders[0], folders[2]] and all(f.is_dir() for f in folders)
    report = registry.gc(keep=1, metric="loss")
    assert sorted(report.versions) == [registry.layout.version("jets", n) for n in (1, 3)]
    assert report.attachments == [folders[0], folders[2]]
    assert not registry.layout.attachments("jets", 1).exists()
    assert not registry.layout.attachments("jets", 3).exists()
    assert registry.get("jets/2").attachments() == [KIND] and registry.verify() == []


def test_an_attach_that_lands_after_gc_removed_its_version_is_swept(
    registry: Registry, tmp_path: Path
) -> None:
    version = registry.get("jets/1")
    registry.gc(keep=1, metric="loss")  # removes jets/1 and jets/3
    with pytest.raises(NotFound, match="no longer in the registry"):
        registry.attach(version, KIND, package_folder(tmp_path / "package"))
    # What a writer that passed its check just before gc leaves: an orphan, swept next time.
    orphan = registry.layout.attachment("jets", 1, KIND)
    package_folder(orphan / FILES)
    (orphan / MARKER).write_text("{}")
    assert registry.gc().attachments == [orphan] and not orphan.parent.exists()


def test_an_unreadable_attachment_marker_is_named_and_show_still_shows_the_version(
    attached: ModelVersion, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = registry.layout.attachment("jets", 1, KIND) / MARKER
    marker.chmod(0o644)
    marker.write_bytes(b"\xff\xfe not json")
    [problem] = registry.verify()
    assert (problem.path, problem.problem) == (marker, "is not a commit marker (not a JSON object)")
    with pytest.raises(CorruptVersion, match=f"attachment of jets/1 is corrupt: {marker}"):
        attached.attachment(KIND)
    args = ["--no-color", "registry", "--root", str(registry.root)]
    assert main([*args, "show", "jets/1", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["attachments"][KIND].startswith("damaged: the 'onnx-package' attachment of jets/1")
    assert main([*args, "verify"]) == 1
    assert f"corrupt {marker}: is not a commit marker" in capsys.readouterr().out
