"""A driver at scale (issue 19): thousands of trials, and where each core-millisecond of one goes.

Every row runs on the embedded default (the local site: `dask worker` processes,
a journal file on the driver, a process per trial forked from a warm spare),
Random sampler, and is printed with its target and PASS/FAIL:
A. N x 1 s trials on 8 slots: span / ideal, and the last fifth of the trials
   against the first (the time to finish N/5 trials: a cost growing with the
   study shows there).
B. 0.25 s trials on 16 slots: trials per second, against Optuna trials as bare
   dask tasks through DaskStorage (no process isolation), run here on the same
   16 threads.
C. N x 0.1 s trials on 16 slots: completes with exactly N ended and no trial
   ended twice; the driver's memory (RSS growth per 1,000 trials over the second
   half, against what the study itself holds: its journal replayed alone); then
   a resume (the same study, 32 trials more): the journal's replay plus the
   time from the first ask to the first new trial's start (the cluster's start
   is printed apart, as hpo_bench.py does).

Per trial, each row prints the CPU time (user + system) of: the driver's main
thread (the loop: asks, tells, placement, progress), the driver's other threads
(dask's event loop: the scheduler and the client's comms) less the journal, the
journal (the storage calls, on the scheduler's loop and on the driver's main
thread), the dask worker processes, the forkserver (forking the spares), and the
trial processes; CPU is counted from the first trial's ask to the last trial's
end, so cluster start and warm-up are not in it.

Run: .venv/bin/python benchmarks/hpo_scale.py [--quick] [--rows ABC]
(--quick: A 200 trials, B 160, C 1,000; the full table: 1,000, 800, 10,000.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import psutil
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
optuna.logging.set_verbosity(optuna.logging.WARNING)

from batchml.hpo.outcome import STARTED_ATTR, has_ended  # noqa: E402

CATEGORIES = ("driver", "scheduler", "journal", "worker", "fork", "trial")
SAMPLE_S = 0.2


def sleeper(seconds: float) -> Callable[[Any, Any], float]:
    def objective(trial: Any, ctx: Any = None) -> float:
        x = trial.suggest_float("x", -1.0, 1.0)
        time.sleep(seconds)
        return x * x

    return objective


@dataclass
class JournalCounts:
    """The CPU of the journal's storage calls, on the driver's main thread or elsewhere (the
    scheduler's loop), the new trials and the trials that reached a finished state."""

    cpu: dict[str, float] = field(default_factory=lambda: {"main": 0.0, "other": 0.0})
    created: int = 0
    finished: int = 0


JOURNAL = JournalCounts()
TIMED = (
    "create_new_trial", "set_trial_param", "set_trial_state_values",
    "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial", "get_all_trials", "get_study_user_attrs", "set_study_user_attr",
    "get_study_id_from_name", "get_study_directions", "get_trial_id_from_study_id_trial_number",
)  # fmt: skip


def time_journal() -> None:
    """Count the CPU of every JournalStorage call in this process: DaskStorage pickles its
    storage to the scheduler (here, in the driver), so the class is timed, not one object."""
    main = threading.main_thread()
    for name in TIMED:
        method = getattr(JournalStorage, name)

        def timed(
            self: Any, *args: Any, _method: Any = method, _name: str = name, **kw: Any
        ) -> Any:
            begin = time.thread_time()
            try:
                return _method(self, *args, **kw)
            finally:
                where = "main" if threading.current_thread() is main else "other"
                JOURNAL.cpu[where] += time.thread_time() - begin
                if _name == "create_new_trial":
                    JOURNAL.created += 1
                elif (
                    _name == "set_trial_state_values"
                    and (args[1:] or [kw.get("state")])[0].is_finished()
                ):
                    JOURNAL.finished += 1

        setattr(JournalStorage, name, timed)


class CpuMeter:
    """Samples the CPU of the driver's threads and of every process under the driver."""

    def __init__(self, trials: int) -> None:
        self.start_at, self.end_at = JOURNAL.created + 1, JOURNAL.finished + trials
        self.finished_before = JOURNAL.finished
        self.me = psutil.Process()
        self.main = threading.get_native_id()
        self.procs: dict[int, dict[str, float]] = {}  # pid -> category -> cpu, latest sample
        self.start: dict[str, float] | None = None
        self.end: dict[str, float] | None = None
        self.rss: list[tuple[int, int]] = []  # (trials finished, driver RSS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cpu-meter")

    def __enter__(self) -> CpuMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        mine = threading.get_native_id()
        while not self._stop.wait(SAMPLE_S):
            totals = self._sample(mine)
            if self.start is None and JOURNAL.created >= self.start_at:
                self.start = totals
            if self.end is None and JOURNAL.finished >= self.end_at:
                self.end = totals
            done = JOURNAL.finished - self.finished_before
            self.rss.append((done, self.me.memory_info().rss))

    def _sample(self, mine: int) -> dict[str, float]:
        totals = dict.fromkeys(CATEGORIES, 0.0)
        driver_other = 0.0
        for thread in self.me.threads():
            cpu = thread.user_time + thread.system_time
            if thread.id == self.main:
                totals["driver"] += cpu
            elif thread.id != mine:
                driver_other += cpu
        totals["journal"] = JOURNAL.cpu["main"] + JOURNAL.cpu["other"]
        totals["driver"] -= JOURNAL.cpu["main"]
        totals["scheduler"] = driver_other - JOURNAL.cpu["other"]
        forkservers = set()
        children = self.me.children(recursive=True)
        for child in children:
            try:
                with child.oneshot():
                    if "multiprocessing.forkserver" in " ".join(child.cmdline()):
                        forkservers.add(child.pid)
            except psutil.Error:
                continue
        for child in children:
            try:
                with child.oneshot():
                    times, parent = child.cpu_times(), child.ppid()
            except psutil.Error:
                continue
            if parent in forkservers:
                continue  # a trial process: counted in its forkserver's children once reaped
            if child.pid in forkservers:
                self.procs[child.pid] = {
                    "fork": times.user + times.system,
                    "trial": times.children_user + times.children_system,
                }
            else:
                self.procs[child.pid] = {"worker": times.user + times.system}
        for counts in self.procs.values():  # ended processes keep their last sample
            for kind, cpu in counts.items():
                totals[kind] += cpu
        return totals

    def per_trial_ms(self, trials: int) -> dict[str, float]:
        if self.start is None or self.end is None:
            return {}
        return {k: 1e3 * (self.end[k] - self.start[k]) / trials for k in CATEGORIES}


def print_cpu(label: str, per_trial: dict[str, float]) -> None:
    if not per_trial:
        print(f"  {label}: CPU not sampled (run too short)")
        return
    parts = "  ".join(f"{k} {v:.1f}" for k, v in per_trial.items())
    print(f"  {label} CPU per trial, ms: {parts}  total {sum(per_trial.values()):.1f}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_batchml(
    folder: Path, name: str, n: int, seconds: float, jobs: int, per_job: int
) -> tuple[optuna.Study, CpuMeter, float]:
    from batchml.hpo import run_study

    with CpuMeter(n) as meter:
        begin = time.perf_counter()
        study = run_study(
            sleeper(seconds), n_trials=n, site="local", max_jobs=jobs, trials_per_job=per_job,
            study_name=name, storage=str(folder / f"{name}.journal"), progress=False,
            sampler=optuna.samplers.RandomSampler(),
        )  # fmt: skip
        elapsed = time.perf_counter() - begin
    return study, meter, elapsed


def span(trials: list[optuna.trial.FrozenTrial]) -> float:
    first = min(t.datetime_start for t in trials if t.datetime_start)
    return (max(t.datetime_complete for t in trials if t.datetime_complete) - first).total_seconds()


def check_budget(study: optuna.Study, n: int) -> tuple[bool, str]:
    trials = study.trials
    ended = sum(1 for t in trials if has_ended(t))
    numbers = [t.number for t in trials]
    return ended == n and len(set(numbers)) == len(numbers), f"{ended} ended of {n}"


def row_a(folder: Path, n: int) -> None:
    print(f"== A. {n} x 1 s trials on 8 slots (2 workers x 4)  load {load()}")
    study, meter, _ = run_batchml(folder, "scale-a", n, 1.0, 2, 4)
    trials = [t for t in study.trials if t.state == TrialState.COMPLETE]
    ratio = span(trials) / (n * 1.0 / 8)
    ends = sorted(t.datetime_complete.timestamp() for t in trials)
    first = min(t.datetime_start for t in trials).timestamp()
    fifth = n // 5
    early, late = ends[fifth - 1] - first, ends[-1] - ends[-fifth - 1]
    ok, budget = check_budget(study, n)
    print(f"  span / ideal {ratio:.3f}  target <= 1.05  {verdict(ratio <= 1.05)}")
    print(
        f"  last fifth / first fifth {late / early:.3f} ({late:.1f} s / {early:.1f} s)  "
        f"target <= 1.03  {verdict(late / early <= 1.03)}"
    )
    print(f"  budget: {budget}, no duplicate  {verdict(ok)}")
    print_cpu("batchml", meter.per_trial_ms(n))
    print(f"  load after {load()}")


def _bare_trial(storage: Any, name: str, seconds: float) -> None:
    study = optuna.load_study(
        study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler()
    )
    study.optimize(sleeper(seconds), n_trials=1)


def bare_dask(folder: Path, n: int, seconds: float) -> tuple[float, dict[str, float]]:
    """Optuna trials as bare dask tasks through DaskStorage: 2 workers x 8 threads."""
    from distributed import Client, LocalCluster
    from optuna_integration.dask import DaskStorage

    with (
        LocalCluster(n_workers=2, threads_per_worker=8, processes=True) as cluster,
        Client(cluster) as client,
    ):
        storage = DaskStorage(
            JournalStorage(JournalFileBackend(str(folder / "bare.journal"))), client=client
        )
        optuna.create_study(study_name="bare", storage=storage)
        with CpuMeter(n) as meter:
            begin = time.perf_counter()
            futures = [
                client.submit(_bare_trial, storage, "bare", seconds, pure=False) for _ in range(n)
            ]
            client.gather(futures)
            rate = n / (time.perf_counter() - begin)
            time.sleep(2 * SAMPLE_S)
    return rate, meter.per_trial_ms(n)


def row_b(folder: Path, n: int) -> None:
    print(f"== B. {n} x 0.25 s trials on 16 slots (2 workers x 8)  load {load()}")
    base, base_cpu = bare_dask(folder, n, 0.25)
    study, meter, _ = run_batchml(folder, "scale-b", n, 0.25, 2, 8)
    rate = n / span(study.trials)
    print(f"  bare dask tasks through DaskStorage (baseline): {base:.1f} trials/s")
    print(
        f"  batchml {rate:.1f} trials/s  ratio to baseline {rate / base:.3f}  "
        f"target >= 30  {verdict(rate >= 30)}"
    )
    print_cpu("baseline", base_cpu)
    print_cpu("batchml", meter.per_trial_ms(n))
    print(f"  load after {load()}")


def the_study_itself(path: Path, n: int) -> tuple[float, float]:
    """Seconds to replay the journal alone, and the MiB per 1,000 trials it then holds
    (Optuna keeps every trial of a study in memory: the driver's floor)."""
    begin = time.perf_counter()
    JournalStorage(JournalFileBackend(str(path)))
    replay_s = time.perf_counter() - begin
    tracemalloc.start()
    kept = JournalStorage(JournalFileBackend(str(path)))
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return replay_s, size / n * 1000 / 2**20


def row_c(folder: Path, n: int) -> None:
    print(f"== C. {n} x 0.1 s trials on 16 slots (2 workers x 8)  load {load()}")
    study, meter, _ = run_batchml(folder, "scale-c", n, 0.1, 2, 8)
    ok, budget = check_budget(study, n)
    print(f"  {n / span(study.trials):.1f} trials/s; {budget}, no duplicate  {verdict(ok)}")
    replay_s, floor = the_study_itself(folder / "scale-c.journal", n)
    half = [(done, rss) for done, rss in meter.rss if n // 2 <= done <= n]
    if len(half) >= 2:
        growth = (half[-1][1] - half[0][1]) / max(1, half[-1][0] - half[0][0]) * 1000 / 2**20
        peak = max(rss for _, rss in meter.rss) / 2**20
        print(
            f"  driver RSS peak {peak:.0f} MiB; growth over the second half {growth:.1f} MiB "
            f"per 1,000 trials, the study itself {floor:.1f} (its journal replayed alone); "
            f"beyond it {growth - floor:.1f}  target <= 5  {verdict(growth - floor <= 5)}"
        )
    print_cpu("batchml", meter.per_trial_ms(n))

    begin = time.time()
    study, _, _ = run_batchml(folder, "scale-c", n + 32, 0.1, 2, 8)
    resumed = [t for t in study.trials if t.datetime_start and t.datetime_start.timestamp() > begin]
    started = min(float(t.user_attrs[STARTED_ATTR]) for t in resumed)
    asked = min(t.datetime_start.timestamp() for t in resumed if t.datetime_start)
    took = replay_s + started - asked
    print(
        f"  resume, 32 trials more: the journal's replay {replay_s:.2f} s, the first new trial "
        f"started {started - asked:.2f} s after the first ask; the call to that start "
        f"{started - begin:.1f} s in all (cluster start apart)  replay + ask to start "
        f"{took:.2f} s  target <= 5  {verdict(took <= 5)}"
    )
    print(f"  load after {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (a smoke run)")
    parser.add_argument("--rows", default="ABC", help="which rows to run (default ABC)")
    args = parser.parse_args()
    sizes = {"A": 200, "B": 160, "C": 1000} if args.quick else {"A": 1000, "B": 800, "C": 10000}
    rows = {"A": row_a, "B": row_b, "C": row_c}
    time_journal()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HOME"] = tmp  # no site or study of the user's is touched
        for key in args.rows.upper():
            rows[key](Path(tmp), sizes[key])


if __name__ == "__main__":
    main()
