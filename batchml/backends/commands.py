"""The one way batchml runs a scheduler command: argv only, a timeout, errors that say everything.

A shell is never involved (no quoting to get wrong), and a failure names the
command, its exit status and what it printed, because "sbatch failed" alone
sends the user to guess.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Mapping, Sequence

from batchml.backends.base import SchedulerError

log = logging.getLogger(__name__)


def run_command(
    argv: Sequence[str],
    *,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> str:
    """Run ``argv``; return its stdout, or raise SchedulerError with stderr and the exit status."""
    shown = shlex.join(argv)
    log.debug("running %s", shown)
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError:
        raise SchedulerError(
            f"{argv[0]!r} is not installed or not on PATH (running: {shown})",
            hint="run this on a submit host of the site, or fix PATH",
        ) from None
    except subprocess.TimeoutExpired:
        raise SchedulerError(
            f"{shown} did not answer within {timeout:.0f} s",
            hint="the scheduler may be down or overloaded; try again later",
        ) from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise SchedulerError(f"{shown} failed with exit status {done.returncode}: {detail}")
    return done.stdout
