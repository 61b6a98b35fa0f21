"""Child Python processes for the registry's multi-process tests (not a test module).

Real processes, not threads: the registry's guarantees are about processes
(on many hosts) racing on one folder, and SIGKILL only exists for processes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    """Run ``code`` (dedented) in a fresh interpreter with ``args`` as sys.argv[1:]."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# Children wait for this file to appear, so they start their race together.
WAIT_FOR_START = """
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.005)
"""


def start(barrier: Path) -> None:
    barrier.write_text("go")


def dead_pid() -> int:
    """The pid of a process that has just exited (for owner and lock staleness checks)."""
    child = spawn("import os; print(os.getpid())")
    out, _ = child.communicate(timeout=60)
    return int(out)


def finish(children: list[subprocess.Popen[str]], timeout: float = 60) -> list[tuple[int, str]]:
    """(exit status, stderr) of every child, in order."""
    results = []
    for child in children:
        _, err = child.communicate(timeout=timeout)
        results.append((child.returncode, err))
    return results
