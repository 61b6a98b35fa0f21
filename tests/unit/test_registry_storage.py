"""A full disk, a read-only mount, no write permission: one named error, nothing half-published.

The filesystems are real: small tmpfs mounts (bytes or inodes) and a read-only
bind mount, which need root, as CI runs; a user without write permission is a
child process without the capabilities that let root ignore file modes.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchml.cli import main
from batchml.registry import Registry, StorageError

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root (CI runs as root)")
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, PR_CAPBSET_DROP = 1, 2, 24


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (remount it with other limits to fill it)."""
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    mount("-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(folder))
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False, timeout=60)


def limit(folder: Path, *, size: str | None = None, spare_inodes: int | None = None) -> None:
    options = ["remount"]
    if size is not None:
        options.append(f"size={size}")
    if spare_inodes is not None:
        stats = os.statvfs(folder)
        options.append(f"nr_inodes={stats.f_files - stats.f_ffree + spare_inodes}")
    mount("-o", ",".join(options), str(folder))


def cli(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["--no-color", "registry", "--root", str(root), *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


def nothing_published(registry: Registry) -> None:
    assert registry.versions("jets") == [1] and registry.aliases("jets") == {"production": 1}
    assert registry.get("jets").version == 1 and registry.damaged("jets") == []
    assert not registry.layout.staging.exists() or not any(registry.layout.staging.iterdir())


@needs_root
def test_a_full_disk_is_named_and_a_retry_publishes_once(
    tmpfs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = Registry(tmpfs / "registry")
    registry.publish("jets", b"small", aliases=["production"])
    limit(tmpfs, size="1m")
    with pytest.raises(StorageError) as caught:
        registry.publish("jets", os.urandom(2 << 20), description="big", aliases=["production"])
    error = caught.value
    assert error.message.startswith("cannot publish a version: no space is left on its filesystem")
    assert error.hint is not None and error.hint.startswith("free space there")
    nothing_published(registry)
    limit(tmpfs, size="8m")
    again = registry.publish("jets", os.urandom(2 << 20), description="big", aliases=["production"])
    assert registry.versions("jets") == [1, again.version] and again.version == 2
    assert again.annotations["description"] == "big" and registry.verify() == []

    limit(tmpfs, spare_inodes=0)
    status, _, err = cli(registry.root, capsys, "alias", "jets", "staging", "1")
    assert status == 1 and err.startswith("error: cannot move an alias: no space is left")
    assert registry.aliases("jets") == {"production": 2}
    assert cli(registry.root, capsys, "verify")[0] == 0


@needs_root
def test_publish_is_all_or_nothing_wherever_the_disk_fills(tmpfs: Path) -> None:
    """Out of inodes at every step in turn: before, during and after the claim of a number."""
    registry = Registry(tmpfs / "registry")
    registry.publish("jets", b"v1", aliases=["production"])
    failures = 0
    for spare in range(80):
        limit(tmpfs, spare_inodes=spare)
        try:
            published = registry.publish(
                "jets",
                b"v2",
                files={"card.md": b"# card"},
                description="second",
                tags=["new"],
                aliases=["production", "latest"],
            )
        except StorageError as exc:
            assert "no space is left on its filesystem" in exc.message
            nothing_published(registry)
            failures += 1
            continue
        break
    else:
        pytest.fail("80 spare inodes were not enough to publish")
    # Some attempts failed after claiming a number: their folders stay, invisible, emptied.
    withdrawn = set(registry.layout.numbers("jets")) - {1, published.version}
    assert withdrawn
    for number in withdrawn:
        left = sorted(p.name for p in registry.layout.version("jets", number).iterdir())
        assert left in (["PUBLISHING"], ["PUBLISHING", "TOMBSTONE"]), left
    assert failures > len(withdrawn) and registry.versions("jets") == [1, published.version]
    number = published.version
    assert registry.aliases("jets") == {"production": number, "latest": number}
    assert published.annotations == {"description": "second", "tags": ["new"]}
    assert published.files == ["extra/card.md", "model/model.bin"]
    assert registry.verify() == [] and registry.damaged("jets") == []


@needs_root
def test_a_read_only_registry_reads_and_names_the_refused_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    writable = Registry(tmp_path / "registry")
    writable.publish("jets", b"v1", metrics={"loss": 1.0}, aliases=["production"])
    root = tmp_path / "read-only"
    root.mkdir()
    mount("--bind", str(writable.root), str(root))
    try:
        mount("-o", "remount,bind,ro", str(root))
        registry = Registry(root)
        with pytest.raises(StorageError, match="its filesystem is mounted read-only") as caught:
            registry.publish("jets", b"v2")
        assert caught.value.hint is not None and "use a writable registry" in caught.value.hint
        for command in (["list"], ["list", "jets"], ["show", "jets@production"], ["verify"]):
            assert cli(root, capsys, *command)[0] == 0, command
        for command, action in (
            (["alias", "jets", "staging", "1"], "move an alias"),
            (["gc", "--keep", "0"], "collect garbage"),
        ):
            status, _, err = cli(root, capsys, *command)
            assert status == 1, command
            assert err.startswith(f"error: cannot {action}: its filesystem is mounted read-only")
        assert writable.versions("jets") == [1] and writable.aliases("jets") == {"production": 1}
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False, timeout=60)


def _without_root_powers() -> None:
    """In the child: drop what lets root ignore file modes, as any other user lacks it."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_as_other_user(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        preexec_fn=_without_root_powers,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


PUBLISH = """
import sys
from batchml.registry import Registry, StorageError
try:
    Registry(sys.argv[1]).publish("jets", b"theirs")
except StorageError as exc:
    print(exc)
    sys.exit(3)
"""


@needs_root
def test_a_registry_without_write_permission_names_the_owner_to_ask(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.publish("jets", b"v1", aliases=["production"])
    folders = [registry.root, *(p for p in registry.root.rglob("*") if p.is_dir())]
    for folder in folders:
        folder.chmod(0o555)
    try:
        cli_args = ["-m", "batchml.cli", "--no-color", "registry", "--root", str(registry.root)]
        moved = run_as_other_user(*cli_args, "alias", "jets", "staging", "1")
        assert moved.returncode == 1, moved.stderr
        assert moved.stderr.startswith("error: cannot move an alias: permission denied")
        assert f"hint: ask the owner of {registry.root} for write access" in moved.stderr
        assert "Traceback" not in moved.stderr
        listed = run_as_other_user(*cli_args, "list", "jets")
        assert listed.returncode == 0 and "production" in listed.stdout, listed.stderr
        published = run_as_other_user("-c", PUBLISH, str(registry.root))
        assert published.returncode == 3, published.stderr
        assert published.stdout.startswith("cannot publish a version: permission denied")
    finally:
        for folder in folders:
            folder.chmod(0o755)
    assert registry.versions("jets") == [1] and registry.aliases("jets") == {"production": 1}
