"""batchml._compat.dask_jobqueue: Ctrl-C stays a KeyboardInterrupt once dask-jobqueue is loaded.

Each case runs in a fresh interpreter: the handler is process-wide, and set at import.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from batchml._compat.dask_jobqueue import CHECKED_ON, HANDLER_MODULE

CTRL_C = "import os, signal, time; os.kill(os.getpid(), signal.SIGINT); time.sleep(10)"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_dask_jobqueue_still_makes_ctrl_c_exit_0() -> None:
    """When this fails, a dask-jobqueue release changed: check it, then update or drop the fix."""
    probe = _python(
        "import signal, dask_jobqueue\n"
        "print(dask_jobqueue.__version__, signal.getsignal(signal.SIGINT).__module__)"
    )
    assert probe.stdout.split() == [CHECKED_ON, HANDLER_MODULE], probe.stderr
    assert _python(f"import dask_jobqueue\n{CTRL_C}").returncode == 0


@pytest.mark.parametrize(
    "imports",
    [
        "import batchml._compat.dask_jobqueue",
        "import dask_jobqueue\nimport batchml._compat.dask_jobqueue",  # another import came first
        "import batchml.hpo\nimport dask_jobqueue.slurm",  # and later ones change nothing
    ],
)
def test_through_batchml_ctrl_c_raises_keyboard_interrupt(imports: str) -> None:
    ended = _python(f"{imports}\n{CTRL_C}")
    assert ended.returncode == -signal.SIGINT, ended.stderr  # an uncaught KeyboardInterrupt
    assert "KeyboardInterrupt" in ended.stderr
