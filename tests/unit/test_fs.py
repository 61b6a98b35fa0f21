"""batchml._fs, the one way files are written: replace, exclusive create, claims, modes;
and the registry's owner checks of leftovers (registry/on_disk.py)."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchml._fs import (
    claim_by_rename,
    create_exclusive,
    make_readonly,
    owner_tag,
    replacing,
    write_atomic,
)
from batchml.registry.on_disk import make_dirs, owner_is_gone, split_owner
from tests.unit.registry_children import dead_pid


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: the worst a user can have; the registry must still not be world-writable."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_write_atomic_replaces_a_link_and_never_writes_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"mine")
    link = tmp_path / "report.html"
    link.symlink_to(victim)
    write_atomic(link, b"report")
    assert victim.read_bytes() == b"mine"
    assert not link.is_symlink() and link.read_bytes() == b"report"


def test_replacing_shows_the_file_only_once_the_writer_is_done(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with replacing(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name != target.name
        temporary.write_bytes(b"new")
        assert target.read_bytes() == b"old"
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_replacing_keeps_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "sample.root"
    target.write_bytes(b"complete")
    names = []
    for _ in range(2):
        with pytest.raises(RuntimeError), replacing(target) as temporary:
            names.append(temporary.name)
            temporary.write_bytes(b"half")
            raise RuntimeError("killed while writing")
    assert target.read_bytes() == b"complete"
    assert [p.name for p in tmp_path.iterdir()] == ["sample.root"]
    assert names[0] != names[1]  # no name another user could create first


def test_create_exclusive_succeeds_once_and_keeps_the_first(tmp_path: Path) -> None:
    target = tmp_path / "00000001.json"
    assert create_exclusive(target, b"first")
    assert not create_exclusive(target, b"second")
    assert target.read_bytes() == b"first"
    assert not os.access(target, os.W_OK) or os.geteuid() == 0
    assert stat.S_IMODE(target.stat().st_mode) & 0o222 == 0
    assert [p.name for p in tmp_path.iterdir()] == ["00000001.json"]


def test_claim_by_rename_is_won_once_and_the_loser_keeps_its_folder(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        (folder / "owner").write_text(folder.name)
    assert claim_by_rename(first, tmp_path / "7")
    assert not claim_by_rename(second, tmp_path / "7")
    assert (tmp_path / "7" / "owner").read_text() == "first"
    assert (second / "owner").read_text() == "second"


def test_files_are_never_world_writable(tmp_path: Path, open_umask: None) -> None:
    write_atomic(tmp_path / "a", b"x")
    assert create_exclusive(tmp_path / "b", b"x")
    make_dirs(tmp_path / "c")
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o002 == 0, path


def test_make_readonly_drops_every_write_bit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    make_readonly(path)
    assert stat.S_IMODE(path.stat().st_mode) & 0o222 == 0


def test_owner_of_a_dead_process_is_gone_and_of_a_live_one_is_not() -> None:
    host = socket.gethostname()
    assert owner_is_gone(f"{host}-{dead_pid()}-abcd", 0.0, 1e9)
    assert not owner_is_gone(owner_tag(), 1e9, 1.0)  # this very process
    assert split_owner(owner_tag())[1] == os.getpid()


def test_another_hosts_leftover_goes_only_after_the_grace() -> None:
    assert not owner_is_gone("elsewhere.cern.ch-123-abcd", age_s=10, grace_s=60)
    assert owner_is_gone("elsewhere.cern.ch-123-abcd", age_s=61, grace_s=60)
