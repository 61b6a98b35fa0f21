"""Trial processes: a fresh one per trial, forked ahead as a spare, and none left at exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, time
    import cloudpickle, optuna
    from pathlib import Path
    from batchml.hpo.isolation import TrialContext, run_isolated, _spares

    def objective(trial, ctx):
        trial.suggest_float("x", 0.0, 1.0)
        return float(os.getpid())

    study = optuna.create_study()
    ctx = TrialContext(devices=(), scratch_dir=Path("."), checkpoint_dir=Path("."), site="t")
    pids = []
    for _ in range(3):
        trial = study.ask()
        outcome = run_isolated(cloudpickle.dumps(objective), trial, ctx, preload=())
        assert outcome.kind == "complete", outcome
        pids.append(int(outcome.value))
        deadline = time.monotonic() + 30
        while not _spares._ready and time.monotonic() < deadline:
            time.sleep(0.01)  # the spare for the next trial is forked in the background
    print(len(set(pids)), os.getpid() not in pids, len(_spares._ready) >= 1)
    """
)


def test_each_trial_runs_in_a_fresh_process_and_spares_do_not_hold_up_exit() -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["3", "True", "True"]  # and it exited with a spare waiting
