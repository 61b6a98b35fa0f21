"""How many lines of dask's own log a 4-trial local study prints: batchml's default vs INFO.

The figure behind batchml/backends/dask_log.py (recorded in BENCHMARKS.md). Each
study runs in a fresh interpreter with a home folder of its own; the second one
is given DASK_LOGGING__DISTRIBUTED=info, as `batchml -v` sets it.

Command: .venv/bin/python benchmarks/dask_log_lines.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

STUDY = """
from batchml.hpo import run_study


def objective(trial, ctx):
    return trial.suggest_float("x", 0.0, 1.0)


run_study(objective, n_trials=4, site="local", study_name="dask-log-lines", progress=False)
"""


def info_lines(extra_env: dict[str, str]) -> int:
    """dask's INFO lines on stderr of one 4-trial study."""
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if k != "DASK_LOGGING__DISTRIBUTED"}
        env.update({"HOME": home, **extra_env})
        done = subprocess.run(
            [sys.executable, "-c", STUDY],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
    return sum(" - INFO - " in line for line in done.stderr.splitlines())


def main() -> None:
    quiet = info_lines({})
    verbose = info_lines({"DASK_LOGGING__DISTRIBUTED": "info"})
    print(f"dask INFO lines, 4-trial local study: batchml default {quiet}, info {verbose}")


if __name__ == "__main__":
    main()
