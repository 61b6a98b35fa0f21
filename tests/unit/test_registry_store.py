"""The registry as a library user meets it: publish, get by any URI, verify, move the folder."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from batchml.errors import InvalidValue
from batchml.registry import BadReference, CorruptVersion, NotFound, Registry, RegistryError


def flip_one_byte(path: Path, offset: int = 0) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


def test_import_does_not_import_torch_or_numpy() -> None:
    code = (
        "import sys, batchml.registry; print([m for m in ('torch', 'numpy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_publish_bytes_and_files_records_everything(registry: Registry, tmp_path: Path) -> None:
    card = tmp_path / "card.md"
    card.write_text("# model card\n")
    version = registry.publish(
        "jets",
        b"weights",
        files={"card.md": card, "cfg/train.yaml": b"lr: 0.1\n"},
        metrics={"val_loss": 0.25},
        params={"lr": 0.1, "layers": [64, 64]},
        preprocessing={"mean": [1.0, 2.0], "std": [0.5, 0.5]},
        lineage={
            "hpo_study": "jets-v1",
            "hpo_trial": 17,
            "data": [{"url": "root://eos//x.root", "size": 10}],
        },
        description="first try",
        tags=["baseline"],
    )
    assert (version.name, version.version) == ("jets", 1)
    assert version.files == ["extra/card.md", "extra/cfg/train.yaml", "model/model.bin"]
    assert version.file("model/model.bin").read_bytes() == b"weights"
    assert version.file("extra/card.md").read_text() == "# model card\n"
    assert version.metrics == {"val_loss": 0.25}
    assert version.params == {"lr": 0.1, "layers": [64, 64]}
    assert version.manifest["preprocessing"] == {"mean": [1.0, 2.0], "std": [0.5, 0.5]}
    lineage = version.lineage
    assert (lineage["hpo_study"], lineage["hpo_trial"]) == ("jets-v1", 17)
    assert lineage["data"][0]["url"] == "root://eos//x.root"
    for key in ("user", "host", "time", "git_commit", "git_dirty", "packages", "job_ids", "site"):
        assert key in lineage
    assert "batchml" in lineage["packages"]
    assert version.annotations == {"description": "first try", "tags": ["baseline"]}
    for path in version.path.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o222 == 0, f"{path} is writable"


def test_torch_module_stores_state_dict_exported_program_and_signature(registry: Registry) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    example = torch.randn(8, 3)
    version = registry.publish(
        "tagger",
        net,
        input_example=example,
        input_names=["jets"],
        variables={"jets": ["pt", "eta", "phi"]},
    )
    assert version.signature == {
        "inputs": [
            {
                "name": "jets",
                "dtype": "float32",
                "shape": ["batch", 3],
                "variables": ["pt", "eta", "phi"],
            }
        ]
    }
    restored = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    restored.load_state_dict(version.load_state_dict())
    batch = torch.randn(5, 3)  # another batch size than the example: the batch dim is symbolic
    program = version.load_exported().module()
    torch.testing.assert_close(program(batch), net(batch))
    assert (version.input_example()["jets"] == example.numpy()).all()


def test_get_by_every_uri_form(registry: Registry) -> None:
    first = registry.publish("jets", b"1")
    second = registry.publish("jets", b"2", aliases=["production"])
    registry.publish("jets", b"3")
    assert registry.get("jets/1").digest == first.digest
    assert registry.get("batchml:jets@production").version == 2
    assert registry.get(f"jets@sha256:{second.digest[:12]}").version == 2
    assert registry.get("jets").version == 3
    assert registry.versions("jets") == [1, 2, 3]
    with pytest.raises(NotFound, match="has no alias 'staging'") as caught:
        registry.get("jets@staging")
    assert caught.value.hint == "its aliases: production"
    with pytest.raises(NotFound, match="no committed version jets/9"):
        registry.get("jets/9")


def test_moved_registry_still_resolves_every_version(registry: Registry, tmp_path: Path) -> None:
    for i in range(3):
        registry.publish("jets", f"v{i}".encode(), metrics={"loss": i})
    registry.alias("jets", "production", 2)
    moved = tmp_path / "elsewhere" / "copy"
    shutil.move(str(registry.root), moved)
    assert not registry.root.exists()
    again = Registry(moved, create=False)
    assert [again.get(f"jets/{n}").file("model/model.bin").read_bytes() for n in (1, 2, 3)] == [
        b"v0",
        b"v1",
        b"v2",
    ]
    assert again.get("jets@production").version == 2
    assert again.verify() == []
    old = str(registry.root).encode()
    for path in moved.rglob("*"):
        if path.is_file():
            assert old not in path.read_bytes(), f"{path} holds the old absolute path"


def test_flipped_byte_is_found_by_verify_and_refused_by_get(registry: Registry) -> None:
    version = registry.publish("jets", b"0123456789" * 100)
    registry.publish("jets", b"fine")
    artifact = version.file("model/model.bin")
    flip_one_byte(artifact, offset=517)
    problems = registry.verify()
    assert [(p.path, p.problem) for p in problems] == [
        (artifact, "sha256 differs from the manifest (content changed)")
    ]
    with pytest.raises(CorruptVersion) as caught:
        registry.get("jets/1")
    assert str(artifact) in caught.value.message
    assert registry.get("jets/2").version == 2


def test_edited_manifest_is_caught_by_the_commit_marker(registry: Registry) -> None:
    version = registry.publish("jets", b"x", metrics={"loss": 1.0})
    manifest = version.path / "manifest.json"
    manifest.chmod(0o644)
    manifest.write_text(manifest.read_text().replace('"loss": 1.0', '"loss": 0.1'))
    with pytest.raises(
        CorruptVersion, match=r"manifest\.json: sha256 differs from the one in COMMITTED"
    ):
        registry.get("jets/1")


@pytest.mark.parametrize("name", ["../evil", "a/b", "x" * 200, "tab\there", ""])
def test_bad_names_are_refused_before_anything_is_written(registry: Registry, name: str) -> None:
    with pytest.raises(BadReference, match="is not a valid model name"):
        registry.publish(name, b"x")
    assert not (registry.root / "models").exists()
    assert not (registry.root.parent / "evil").exists()


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"metrics": {"loss": "low"}}, "metric 'loss' is 'low', not a number"),
        ({"params": {"f": object()}}, "params holds a value JSON cannot store"),
        ({"lineage": {"trial": 3}}, "unknown lineage keys ['trial']"),
        ({"files": {"../x": b"1"}}, "extra file name '../x' would leave the version folder"),
        ({"aliases": ["7"]}, "it is a number"),
    ],
)
def test_bad_input_leaves_nothing_half_written(registry: Registry, kwargs: dict, says: str) -> None:
    with pytest.raises((InvalidValue, BadReference)) as caught:
        registry.publish("jets", b"x", **kwargs)
    assert says in caught.value.message
    assert registry.versions("jets") == []
    staging = registry.root / "staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_annotations_change_without_touching_the_version(registry: Registry) -> None:
    version = registry.publish("jets", b"x")
    notes = registry.annotate("jets/1", description="promoted", tags=["prod", "v1"])
    assert notes == {"description": "promoted", "tags": ["prod", "v1"]}
    again = registry.get("jets/1")
    assert again.annotations == notes and again.digest == version.digest


def test_diff_names_what_changed(registry: Registry) -> None:
    registry.publish("jets", b"a", metrics={"loss": 0.5}, params={"lr": 0.1})
    registry.publish("jets", b"b", metrics={"loss": 0.4}, params={"lr": 0.1})
    changes = {c.key: (c.old, c.new) for c in registry.diff("jets/1", "jets/2")}
    assert changes["metrics.loss"] == (0.5, 0.4)
    assert "files.model/model.bin" in changes
    assert "params.lr" not in changes


def test_opening_a_folder_that_is_not_a_registry_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="is not a batchml registry: it does not exist"):
        Registry(tmp_path / "nothing", create=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(NotFound, match=r"has no batchml-registry\.json"):
        Registry(tmp_path / "other")
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "batchml-registry.json").write_text('{"format": "batchml-registry", "version": 99}')
    with pytest.raises(RegistryError, match="upgrade batchml"):
        Registry(newer)
