"""Where HPO benchmark 2's time goes: 64 x (import torch; sleep 1 s) on 8 GPU slots, per slot.

The same case as ``hpo_bench.py`` 2 (2 local workers of 4 fake GPUs, a process
per trial), run ``--runs`` times; each run prints its ratio to the ideal 8 s
(the first trial's start to the last trial's end, as hpo_bench) and, read back
from the study's journal: how long after the first ask each slot started, the
time each slot spends between trials (start to next start, less the 1 s
sleep), and how many trials each slot ran (uneven counts cost a whole trial).

Run: .venv/bin/python benchmarks/hpo_slots.py [--runs 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
optuna.logging.set_verbosity(optuna.logging.WARNING)

from hpo_bench import _span, efficiency_study  # noqa: E402

from batchml.hpo.outcome import DEVICES_ATTR, STARTED_ATTR  # noqa: E402


def one_run(folder: Path) -> float:
    study = efficiency_study(folder)
    trials = study.trials
    first = min(t.datetime_start for t in trials if t.datetime_start).timestamp()
    ratio = _span(study) / 8.0
    slots: dict[str, list[float]] = defaultdict(list)
    for trial in trials:
        slots[trial.user_attrs[DEVICES_ATTR]].append(trial.user_attrs[STARTED_ATTR])
    starts = [min(s) - first for s in slots.values()]
    between = [b - a - 1.0 for s in slots.values() for a, b in pairwise(sorted(s))]
    print(
        f"ratio {ratio:.3f}; first start after the first ask: median "
        f"{1e3 * statistics.median(starts):.0f} ms, last {1e3 * max(starts):.0f} ms; between "
        f"trials: median {1e3 * statistics.median(between):.1f} ms, mean "
        f"{1e3 * statistics.mean(between):.1f} ms; trials per slot "
        f"{sorted(len(s) for s in slots.values())}",
        flush=True,
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    ratios = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["HOME"] = tmp  # the default checkpoint folder goes there
            ratios.append(one_run(Path(tmp)))
    print(
        f"{len(ratios)} runs: trial wall time / ideal 8 s {min(ratios):.3f}-{max(ratios):.3f}, "
        f"median {statistics.median(ratios):.3f} (target <= 1.05)"
    )


if __name__ == "__main__":
    main()
