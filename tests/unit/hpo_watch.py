"""Watching a search that runs in another process, through its journal file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from batchml.hpo.outcome import STARTED_ATTR

# A study file's objective whose trials are long enough to be caught in flight.
SLOW_OBJECTIVE = """\
import time

def objective(trial, ctx):
    x = trial.suggest_float("x", -1.0, 1.0)
    time.sleep(3.0)
    return x * x
"""


def read_trials(journal: Path, name: str) -> list[FrozenTrial]:
    """The study's trials so far (none before the study exists)."""
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    try:
        return optuna.load_study(study_name=name, storage=storage).trials
    except (KeyError, FileNotFoundError):
        return []


def when_a_trial_runs(process: subprocess.Popen[str], journal: Path, name: str) -> None:
    """Wait until two trials completed and another one is running on a worker."""
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the search made no progress"
        trials = read_trials(journal, name)
        complete = sum(t.state == TrialState.COMPLETE for t in trials)
        started = [
            t for t in trials if t.state == TrialState.RUNNING and STARTED_ATTR in t.user_attrs
        ]
        if complete >= 2 and started:
            return
        time.sleep(0.1)


def stop_mid_search(
    argv: list[str],
    env: dict[str, str],
    journal: Path,
    name: str,
    sent: signal.Signals = signal.SIGINT,
    while_running: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (a search) in a session of its own; once a trial runs on a worker, call
    ``while_running`` and send ``sent``, and wait for the search to end.

    SIGINT goes to the whole process group, as a terminal's Ctrl-C does; SIGTERM to the
    process alone, as a scheduler or an operator sends it.
    """
    run = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        when_a_trial_runs(run, journal, name)
        if while_running is not None:
            while_running()
        if sent == signal.SIGINT:
            os.killpg(run.pid, sent)
        else:
            run.send_signal(sent)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(argv, run.returncode, out, err)
