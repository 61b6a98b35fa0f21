"""Trials that run a command: a training script as it is, or torchrun for multi-GPU trials.

Many analyses already have ``train.py --lr 1e-3``; rewriting it as a Python
objective is a barrier. A ``CommandObjective`` fills the trial's parameters
into an argument list (each ``{name}`` in each argument; never through a
shell, so a value cannot become shell syntax), runs it in the trial's scratch
folder, and reads what it reports. With more than one GPU per trial it runs
under ``torchrun --standalone --nproc_per_node=<gpus>``, one process per GPU
of the trial's slot.

The script reports with ``batchml.trial_report.report(value, step=...)``
(see there), one JSON line per call in a file of the trial's scratch folder. Intermediate values
reach the pruner as the script runs; a pruned trial's command is terminated.
The last value reported without a step is the trial's result. A command that
exits non-zero fails the trial like an objective that raised, with the end of
its output in the message.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import optuna

from batchml.backends.launch import launch_words, script_position
from batchml.errors import InvalidValue
from batchml.hpo.isolation import TrialContext
from batchml.trial_report import REPORT_ENV

POLL_S = 0.2
STOP_GRACE_S = 10.0
Argv = Callable[[dict[str, Any]], Sequence[str]]


class CommandObjective:
    """An objective that runs ``command`` per trial; see the module docstring.

    ``command`` is a string (split like a shell would, without running one), an
    argument list, or a function from the trial's parameters to an argument
    list. A ``.py`` first argument or ``-m module`` runs with the worker's
    Python, any other program as it is (``batchml.backends.launch``). A relative Python
    script (``train.py``, ``python -u train.py``) is taken from ``base``
    (default: the current folder) and made absolute, since the command runs in
    the trial's scratch folder. Workers must see that path (AFS, EOS or a
    shared home, as on lxplus and most Slurm sites).
    """

    def __init__(
        self,
        command: str | Sequence[str] | Argv,
        parameters: Iterable[str],
        base: str | Path | None = None,
    ) -> None:
        self.parameters = set(parameters)
        if callable(command):
            self.template: list[str] | None = None
            self.build: Argv | None = command
            return
        self.template = shlex.split(command) if isinstance(command, str) else list(command)
        self.build = None
        if not self.template:
            raise InvalidValue("the command is empty", hint="write e.g. 'train.py --lr {lr}'")
        launch_words(self.template, sys.executable, torchrun=False)  # refuses a bare '-m' now
        position = script_position(self.template)
        if position is not None and not Path(self.template[position]).is_absolute():
            script = Path(base or ".") / self.template[position]
            if not script.is_file():
                raise InvalidValue(
                    f"the command's script {script} does not exist",
                    hint="give its path relative to the study file, or an absolute one",
                )
            self.template[position] = str(script.resolve())
        unknown = sorted(placeholders(self.template) - self.parameters)
        if unknown:
            raise InvalidValue(
                f"the command names {', '.join('{' + u + '}' for u in unknown)}, "
                "which the search space does not define",
                hint=f"use one of {sorted(self.parameters)} or add it to search_space",
            )

    def argv(self, params: dict[str, Any]) -> list[str]:
        if self.build is not None:
            return [str(a) for a in self.build(dict(params))]
        assert self.template is not None
        return [arg.format_map(params) for arg in self.template]

    def __call__(self, trial: Any, ctx: TrialContext) -> float:
        argv = trial_argv(self.argv(dict(trial.params)), len(ctx.devices))
        report_file = ctx.scratch_dir / "report.jsonl"
        report_file.unlink(missing_ok=True)
        log = ctx.scratch_dir / "command.log"
        env = {**os.environ, REPORT_ENV: str(report_file)}
        env["BATCHML_CHECKPOINT_DIR"] = str(ctx.checkpoint_dir)
        with open(log, "wb") as output:
            process = subprocess.Popen(
                argv, cwd=ctx.scratch_dir, env=env, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,  # torchrun's ranks are stopped with it
            )  # fmt: skip
            return _follow(process, trial, report_file, log)


def trial_argv(command: Sequence[str], gpus: int) -> list[str]:
    """How a trial starts ``command`` with the worker's Python (``batchml.backends.launch``): as it
    is, or with more than one GPU under torchrun, one rank per GPU of the slot."""
    words = launch_words(command, sys.executable, torchrun=gpus > 1)
    if gpus <= 1:
        return words
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={gpus}", *words,
    ]  # fmt: skip


def placeholders(template: Iterable[str]) -> set[str]:
    return {name for arg in template for _, name, _, _ in string.Formatter().parse(arg) if name}


def _follow(process: subprocess.Popen[bytes], trial: Any, report_file: Path, log: Path) -> float:
    """Pass reports to the trial while the command runs; its result, or why there is none."""
    seen = 0
    result: float | None = None
    while True:
        running = process.poll() is None
        lines = report_file.read_text().splitlines() if report_file.exists() else []
        for line in lines[seen:]:
            entry = json.loads(line)
            if entry["step"] is None:
                result = float(entry["value"])
            else:
                trial.report(float(entry["value"]), int(entry["step"]))
                if trial.should_prune():
                    _stop(process)
                    raise optuna.TrialPruned(f"pruned at step {entry['step']}")
        seen = len(lines)
        if not running:
            break
        time.sleep(POLL_S)
    tail = log.read_text(errors="replace")[-2000:]
    if process.returncode != 0:
        raise RuntimeError(
            f"the command exited with {process.returncode}; its output ends:\n{tail}"
        )
    if result is None:
        raise RuntimeError(
            "the command reported no result: call batchml.trial_report.report(value) at its end; "
            f"its output ends:\n{tail}"
        )
    return result


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the command's whole group (torchrun and its ranks), SIGKILL if it lingers."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
