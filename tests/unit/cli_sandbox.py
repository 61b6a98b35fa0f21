"""One `batchml` command line run in-process inside an empty folder, and what it left behind.

Every place batchml reads or writes by default (HOME, the XDG folders, TMPDIR,
the registry, the admin's site folder, the working directory) points into one
fresh folder, so a command cannot touch the real home or /tmp and everything
it creates shows up in a before/after comparison of that folder.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from batchml.cli import main

# Where each variable points, relative to the sandbox; BATCHML_REGISTRY is not created.
SANDBOX_ENV = {
    "HOME": "home",
    "XDG_CONFIG_HOME": "home/.config",
    "XDG_DATA_HOME": "home/.local/share",
    "XDG_CACHE_HOME": "home/.cache",
    "XDG_STATE_HOME": "home/.local/state",
    "XDG_RUNTIME_DIR": "run",
    "TMPDIR": "tmp",
    "BATCHML_ADMIN_SITES_DIR": "admin-sites",
    "BATCHML_REGISTRY": "home/registry",
}
UNSET_ENV = ("BATCHML_SITE", "NO_COLOR")
WORK = "work"  # the working directory; relative paths in a command line start here
FOLDERS = ("home", "home/.config", "home/.local/share", "home/.cache", "run", "tmp", WORK)

Entry = tuple[str, int, int, int]  # kind, mode, size, mtime_ns


@dataclass(frozen=True)
class Outcome:
    """What one command line did: its exit status, its output, and its traces on disk."""

    status: int
    out: str
    err: str
    raised: BaseException | None  # an exception main() let through: a user sees a traceback
    created: tuple[str, ...]  # paths under the sandbox that were not there before
    changed: tuple[str, ...]  # paths whose content, size or mode changed, or that vanished


def enter(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every default location into ``root`` (made here) and go to its work folder."""
    for folder in FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "run").chmod(0o700)
    for variable, relative in SANDBOX_ENV.items():
        monkeypatch.setenv(variable, str(root / relative))
    for variable in UNSET_ENV:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(root / "tmp"))
    monkeypatch.chdir(root / WORK)
    return root / WORK


FIFO = b"\0fifo"  # a named pipe: a path that is not a plain file, inside the sandbox


def write_files(work: Path, files: Mapping[str, str | bytes | None]) -> None:
    """Files a case starts with, relative to the work folder; None makes a folder.

    Never a real device: a case that wants 'not a plain file' gets a FIFO of its
    own, so a command that wrongly replaces it cannot touch the machine (as root,
    ``-o /dev/null`` once swapped the device for a regular file).
    """
    for name, content in files.items():
        path = work / name
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if content == FIFO:
            os.mkfifo(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def snapshot(root: Path) -> dict[str, Entry]:
    """Every path under ``root`` (links not followed) with what would show a change."""
    entries: dict[str, Entry] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            kind = "link" if os.path.islink(path) else "dir" if name in dirs else "file"
            size = 0 if kind == "dir" else st.st_size
            mtime = 0 if kind == "dir" else st.st_mtime_ns
            entries[os.path.relpath(path, root)] = (kind, st.st_mode, size, mtime)
    return entries


def run(argv: Sequence[str], root: Path, capsys: pytest.CaptureFixture[str]) -> Outcome:
    """``batchml ARGV`` through ``batchml.cli.main``, as a shell would run it, in ``root``."""
    before = snapshot(root)
    capsys.readouterr()
    raised: BaseException | None = None
    status: int
    try:
        status = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors and --help
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:
        raised, status = exc, 1
    captured = capsys.readouterr()
    after = snapshot(root)
    created = tuple(sorted(set(after) - set(before)))
    changed = tuple(sorted(p for p in before if after.get(p) != before[p]))
    return Outcome(status, captured.out, captured.err, raised, created, changed)
