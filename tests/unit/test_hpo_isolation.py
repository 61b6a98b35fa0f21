"""Trial processes: a fresh one per trial, forked ahead as a spare, and none left at exit.

Processes are seen from outside, as the operating system lists them: the
trial processes are the children of this process's forkserver, and a spare is
one of them that no trial has used yet.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import optuna
import psutil

from batchml.hpo.isolation import TrialContext, run_isolated, warm_up
from batchml.hpo.outcome import Outcome

CONTEXT = TrialContext(devices=(), scratch_dir=Path("."), checkpoint_dir=Path("."), site="t")


def slow_to_exit(trial: Any, ctx: TrialContext) -> float:
    """Records its process; a thread of its own holds its exit up for 3 s."""
    trial.set_user_attr("pid", os.getpid())
    threading.Thread(target=time.sleep, args=(3,)).start()
    return trial.suggest_float("x", 0.0, 1.0)


def _spares(used: set[int]) -> set[int]:
    """Trial processes waiting for a trial: the forkserver's children no trial has used."""
    found: set[int] = set()
    for server in psutil.Process().children():
        try:
            if "forkserver" in " ".join(server.cmdline()):
                found |= {c.pid for c in server.children() if c.status() != psutil.STATUS_ZOMBIE}
        except psutil.NoSuchProcess:
            continue
    return found - used


def _until_spares_wait(used: set[int], count: int) -> set[int]:
    """The spares once ``count`` of them wait: none is then still being forked to refill."""
    deadline = time.monotonic() + 30
    while len(waiting := _spares(used)) < count:
        assert time.monotonic() < deadline, f"{count} spare trial processes were not forked"
        time.sleep(0.01)
    return waiting


def test_each_trial_runs_in_a_spare_forked_ahead_that_gives_way_once_it_reported() -> None:
    warm_up(2, preload=())
    study = optuna.create_study()
    used: set[int] = set()
    steady = len(_until_spares_wait(used, 2))  # with any an earlier test left
    for _ in range(3):
        waiting = _until_spares_wait(used, steady)  # each trial's refill has been forked
        trial = study.ask()
        ended = run_isolated(cloudpickle.dumps(slow_to_exit), trial, CONTEXT, preload=())
        assert ended.outcome is Outcome.COMPLETE, ended
        pid = study.trials[trial.number].user_attrs["pid"]
        assert pid in waiting and pid != os.getpid()  # a fresh process, forked before the trial
        used.add(pid)
        # while it exits (held up 3 s), it gives way to the next trials
        deadline = time.monotonic() + 2
        while psutil.Process(pid).nice() != 19:
            assert time.monotonic() < deadline, "the trial process kept its priority"
            time.sleep(0.01)
    assert len(used) == 3


EXITS = textwrap.dedent(
    """
    import cloudpickle, optuna
    from pathlib import Path
    from batchml.hpo.isolation import TrialContext, run_isolated, warm_up

    warm_up(2, preload=())
    ctx = TrialContext(devices=(), scratch_dir=Path("."), checkpoint_dir=Path("."), site="t")
    objective = cloudpickle.dumps(lambda trial, ctx: trial.suggest_float("x", 0.0, 1.0))
    for _ in range(3):
        run_isolated(objective, optuna.create_study().ask(), ctx, preload=())
    """
)


def _marked(mark: str) -> list[str]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and process.environ().get("MARK") == mark:
                found.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except psutil.Error:
            continue
    return found


def test_a_process_that_ran_trials_exits_and_leaves_no_trial_process() -> None:
    mark = uuid.uuid4().hex
    run = subprocess.run(
        [sys.executable, "-c", EXITS], capture_output=True, text=True, timeout=60,
        env={**os.environ, "MARK": mark},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    deadline = time.monotonic() + 10
    while (left := _marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == []


MAIN_MODULE = textwrap.dedent(
    """
    import os
    from pathlib import Path

    with open(os.environ["RUNS"], "a") as runs:
        runs.write(f"{os.getpid()}\\n")  # each time this module's code runs

    if __name__ == "__main__":
        import cloudpickle, optuna
        from batchml.hpo.isolation import TrialContext, run_isolated, warm_up

        warm_up(1, preload=())
        ctx = TrialContext(devices=(), scratch_dir=Path("."), checkpoint_dir=Path("."), site="t")
        objective = cloudpickle.dumps(lambda trial, ctx: trial.suggest_float("x", 0.0, 1.0))
        for _ in range(3):
            ended = run_isolated(objective, optuna.create_study().ask(), ctx, preload=())
            assert ended.value is not None, ended
    """
)


def test_trial_processes_do_not_run_the_main_module_of_their_worker_again(tmp_path: Path) -> None:
    """A dask worker's main is the ``dask worker`` command's module; multiprocessing would
    run it again in every trial process."""
    (tmp_path / "worker_main.py").write_text(MAIN_MODULE)
    runs = tmp_path / "runs"
    run = subprocess.run(
        [sys.executable, "-m", "worker_main"], capture_output=True, text=True, timeout=60,
        cwd=tmp_path, env={**os.environ, "RUNS": str(runs), "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert len(runs.read_text().split()) == 1  # in the process started with -m only
