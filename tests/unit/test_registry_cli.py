"""`batchml registry ...` as a user runs it: output, exit codes, one clear message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

from batchml.cli import main
from batchml.registry import Registry


def registry_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchml.cli", "registry", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    registry = Registry(tmp_path / "registry")
    registry.publish("jets", b"one", metrics={"loss": 0.5}, params={"lr": 0.1}, tags=["first"])
    registry.publish(
        "jets", b"two", metrics={"loss": 0.25}, params={"lr": 0.1}, aliases=["production"]
    )
    registry.publish("taus", b"tau")
    return registry.root


def test_list_models_and_versions(root: Path) -> None:
    models = registry_cli(root, "list")
    assert models.returncode == 0, models.stderr
    rows = [line.split() for line in models.stdout.splitlines()[1:]]
    assert rows == [["jets", "2", "2", "production=2"], ["taus", "1", "1"]]
    versions = registry_cli(root, "list", "jets")
    lines = versions.stdout.splitlines()
    assert lines[1].split()[0] == "1" and "loss=0.5" in lines[1] and "first" in lines[1]
    assert "production" in lines[2] and "loss=0.25" in lines[2]


def test_list_versions_puts_each_cell_under_its_header(tmp_path: Path) -> None:
    """Alignment counts what the terminal shows: a wide character takes two columns and
    an escaped markup bracket one, however many characters they take in the markup."""
    registry = Registry(tmp_path / "registry")
    registry.publish("jets", b"one", metrics={"\u4e2d\u6587[/b]": 0.5}, tags=["first"])
    registry.publish("jets", b"two", metrics={"loss": 0.25}, aliases=["production"])
    listed = registry_cli(registry.root, "list", "jets")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["version", "created", "aliases", "metrics", "tags"]

    def column(line: str, text: str) -> int:
        return cell_len(line[: line.index(text)])

    assert column(rows[0], "\u4e2d\u6587[/b]=0.5") == header.index("metrics")
    assert column(rows[0], "first") == header.index("tags")
    assert column(rows[1], "production") == header.index("aliases")
    assert column(rows[1], "loss=0.25") == header.index("metrics")
    assert all(line == line.rstrip() for line in listed.stdout.splitlines())


def test_show_json_holds_the_whole_record(root: Path) -> None:
    shown = registry_cli(root, "show", "batchml:jets@production", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["uri"] == "batchml:jets/2"
    assert record["aliases"] == ["production"]
    assert record["metrics"] == {"loss": 0.25}
    assert record["digest"].startswith("sha256:")


def test_alias_conflict_exits_1_and_bad_version_exits_2(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = registry_cli(root, "alias", "jets", "staging", "1", "--expect", "none")
    assert ok.returncode == 0 and "jets@staging now points at version 1" in ok.stdout
    assert (
        main(
            [
                "--no-color",
                "registry",
                "--root",
                str(root),
                "alias",
                "jets",
                "staging",
                "2",
                "--expect",
                "2",
            ]
        )
        == 1
    )
    assert "error: alias 'staging' points at 1, not 2 as expected" in capsys.readouterr().err
    missing = registry_cli(root, "alias", "jets", "staging", "9")
    assert missing.returncode == 2 and "error: no committed version jets/9" in missing.stderr
    bad = registry_cli(root, "alias", "jets", "staging", "two")
    assert bad.returncode == 2 and "'two' is not a version number or 'none'" in bad.stderr
    history = registry_cli(root, "history", "jets", "--alias", "staging")
    outcomes = [line.split()[2] for line in history.stdout.splitlines()[1:]]
    assert outcomes == ["moved", "conflict"]


@pytest.mark.parametrize("ref", ["../../etc/passwd", "jets/../../x", "jets@sha256:zz"])
def test_traversal_and_malformed_refs_exit_2_with_one_message(root: Path, ref: str) -> None:
    result = registry_cli(root, "show", ref)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "hint: " in result.stderr


def test_verify_names_the_corrupt_file_and_exits_1(root: Path) -> None:
    ok = registry_cli(root, "verify").stdout.strip()
    assert ok == "ok 3 versions (0 attachments) of 2 models verified"
    artifact = root / "models" / "taus" / "versions" / "1" / "files" / "model" / "model.bin"
    artifact.chmod(0o644)
    artifact.write_bytes(b"taU")
    result = registry_cli(root, "verify")
    assert result.returncode == 1
    assert f"corrupt {artifact}: sha256 differs from the manifest" in result.stdout
    shown = registry_cli(root, "show", "taus/1")
    assert shown.returncode == 1 and f"error: taus/1 is corrupt: {artifact}" in shown.stderr


def test_gc_and_diff(root: Path) -> None:
    diff = registry_cli(root, "diff", "jets/1", "jets@production")
    assert diff.returncode == 0
    assert any(line.split() == ["metrics.loss", "0.5", "0.25"] for line in diff.stdout.splitlines())
    dry = registry_cli(root, "gc", "--keep", "0", "--dry-run")
    assert dry.returncode == 0 and "would remove version" in dry.stdout
    done = registry_cli(root, "gc", "--keep", "0", "--metric", "loss")
    assert done.stdout.strip().endswith(
        "gc: removed 1 entries"
    )  # jets/1 (2 is aliased; taus unranked)
    bad = registry_cli(root, "gc", "--grace", "soon")
    assert bad.returncode == 2 and "'soon' is not a duration" in bad.stderr
    negative = registry_cli(root, "gc", "--keep", "-1")
    assert negative.returncode == 2 and "'-1' is not a whole number of 0 or more" in negative.stderr


def test_missing_registry_exits_2_with_a_hint(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "batchml.cli", "registry", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "BATCHML_REGISTRY": str(tmp_path / "none")},
        check=False,
    )
    assert result.returncode == 2
    assert (
        f"error: {tmp_path / 'none'} is not a batchml registry: it does not exist" in result.stderr
    )
