"""A hostile neighbour for attack tests: another local user (``nobody``) acting on shared folders.

The tests run as root (as CI does); root can become ``nobody`` for one
command, which is all an attacker on a shared login node is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

USER = "nobody"
GROUP = "nogroup"

needs_root = pytest.mark.skipif(
    os.getuid() != 0, reason="plays a second user (nobody): run as root, as CI does"
)


def as_neighbour(script: str, *args: str) -> None:
    """Run a shell ``script`` (arguments as $1, $2, ...) as the neighbour; it must succeed."""
    subprocess.run(
        ["sh", "-c", script, "neighbour", *args],
        user=USER, group=GROUP, extra_groups=[], check=True, capture_output=True,
    )  # fmt: skip


def owner(path: Path) -> int:
    return path.lstat().st_uid


@contextmanager
def shared_folder() -> Iterator[Path]:
    """A folder like /tmp (mode 1777: anyone may create, only owners may remove), made here."""
    folder = Path(tempfile.mkdtemp(prefix="batchml-shared-"))
    try:
        folder.chmod(0o1777)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
