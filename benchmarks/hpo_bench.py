"""HPO benchmarks (issue 6): dispatch overhead, parallel efficiency, storage under concurrency.

Every figure is printed against a baseline run in this same script:
1. trials/s of a trivial objective: batchml (LocalCluster, 2 workers, a process per
   trial) vs Optuna in-process (n_jobs=2, in-memory) and vs optuna-integration's
   DaskStorage with plain study.optimize inside 2 dask tasks; batchml's overhead per trial.
2. 64 trials of (import torch; sleep 1 s) on 8 GPU slots (fake ids): trial wall time
   over the ideal 8 s, with cluster start-up reported apart.
3. 8 concurrent workers reporting 10 intermediate values per trial: journal file vs SQLite.

Run: .venv/bin/python benchmarks/hpo_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
optuna.logging.set_verbosity(optuna.logging.WARNING)


def trivial(trial: Any, ctx: Any = None) -> float:
    return trial.suggest_float("x", -1.0, 1.0) ** 2


def torch_sleep(trial: Any, ctx: Any) -> float:
    import torch  # noqa: F401 - the point: importing torch must not cost a second per trial

    x = trial.suggest_float("x", -1.0, 1.0)
    time.sleep(1.0)
    return x * x


def reports_ten(trial: Any, ctx: Any) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    for step in range(10):
        trial.report(x * step, step)
    return x * x


def _dask_optimize(storage: Any, name: str, n: int) -> None:
    study = optuna.load_study(study_name=name, storage=storage)
    study.optimize(trivial, n_trials=n)


def _span(study: optuna.Study) -> float:
    """Seconds from the first trial's start to the last trial's end (cluster start-up apart)."""
    trials = study.trials
    first = min(t.datetime_start for t in trials if t.datetime_start)
    return (max(t.datetime_complete for t in trials if t.datetime_complete) - first).total_seconds()


def dispatch(n: int, folder: Path) -> dict[str, float]:
    from distributed import Client, LocalCluster
    from optuna_integration.dask import DaskStorage

    from batchml.hpo import run_study

    rates = {}
    start = time.perf_counter()
    optuna.create_study().optimize(trivial, n_trials=n, n_jobs=2)
    rates["optuna in-process, n_jobs=2"] = n / (time.perf_counter() - start)

    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
        storage = DaskStorage(None, client=client)
        optuna.create_study(study_name="dask", storage=storage)
        start = time.perf_counter()
        futures = [
            client.submit(_dask_optimize, storage, "dask", n // 2, pure=False) for _ in range(2)
        ]
        client.gather(futures)
        rates["DaskStorage + optimize in 2 dask tasks"] = n / (time.perf_counter() - start)

    journal = str(folder / "dispatch.journal")
    start = time.perf_counter()
    study = run_study(trivial, n_trials=n, site="local", max_jobs=2, study_name="dispatch",
                      storage=journal, progress=False)  # fmt: skip
    total = time.perf_counter() - start
    trials = study.trials
    span = (
        max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    ).total_seconds()
    rates["batchml run_study (process per trial)"] = n / span
    print(f"batchml: {total:.1f} s in all, of which {total - span:.1f} s cluster start and stop")
    return rates


def efficiency_study(folder: Path) -> optuna.Study:
    """Case 2's study: 64 x (import torch; sleep 1 s) on 2 workers of 4 fake GPUs."""
    from batchml.hpo import run_study

    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(f"GPU-{i:08x}" for i in range(8))
    try:
        return run_study(torch_sleep, n_trials=64, site="local", gpus_per_trial=1,
                         trials_per_job=4, max_jobs=2, study_name="efficiency",
                         storage=str(folder / "eff.journal"), progress=False)  # fmt: skip
    finally:
        del os.environ["CUDA_VISIBLE_DEVICES"]


def efficiency(folder: Path) -> tuple[float, float]:
    start = time.perf_counter()
    span = _span(efficiency_study(folder))
    return span / 8.0, time.perf_counter() - start - span


def storage_concurrency(n: int, folder: Path) -> dict[str, tuple[float, int]]:
    from batchml.hpo import run_study

    results = {}
    for label, storage in (
        ("journal file", str(folder / "conc.journal")),
        ("SQLite", f"sqlite:///{folder / 'conc.db'}"),
    ):
        study = run_study(reports_ten, n_trials=n, site="local", max_jobs=8, study_name="conc",
                          storage=storage, progress=False)  # fmt: skip
        rate = n / _span(study)
        errors = sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials)
        results[label] = (rate, errors)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer trials (a smoke run)")
    args = parser.parse_args()
    n = 40 if args.quick else 200
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["HOME"] = tmp  # no site or study of the user's is touched

        print(f"== 1. dispatch overhead, {n} trials of a trivial objective")
        rates = dispatch(n, folder)
        baseline = rates["optuna in-process, n_jobs=2"]
        ours = rates["batchml run_study (process per trial)"]
        for label, rate in rates.items():
            print(f"{label:42s} {rate:8.1f} trials/s   ratio to in-process {rate / baseline:.3f}")
        print(f"batchml overhead per trial: {1000 / ours - 1000 / baseline:.1f} ms (vs in-process)")

        print("== 2. parallel efficiency: 64 x (import torch; sleep 1 s) on 8 slots")
        ratio, startup = efficiency(folder)
        print(
            f"trial wall time / ideal 8 s: {ratio:.3f}   (start-up and stop apart: {startup:.1f} s)"
        )

        print(f"== 3. storage under concurrency: 8 workers, {n // 2} trials x 10 reports")
        results = storage_concurrency(n // 2, folder)
        base_rate = results["journal file"][0]
        for label, (rate, errors) in results.items():
            ratio = rate / base_rate
            print(
                f"{label:14s} {rate:7.1f} trials/s  ratio to journal {ratio:.3f}  failed {errors}"
            )


if __name__ == "__main__":
    main()
