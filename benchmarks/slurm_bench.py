"""Slurm backend benchmark: submit-to-running latency, and status polling with 200 queued jobs.

Against the local test Slurm (``bash tests/services/slurm.sh start``), each figure
next to a baseline measured in the same run:

- submit-to-running: ``SlurmBackend.submit`` (render, atomic writes, sbatch) then
  ``status`` polls until RUNNING, against a bare ``sbatch --wrap`` polled with
  ``squeue -j ID``; median of a few jobs, each cancelled once seen running;
- polling: 200 held jobs (``sbatch --hold``, so they stay queued); one
  ``SlurmBackend.status(ids)`` cycle against the naive cycle of one
  ``squeue -h -j ID`` per job. Calls per cycle are counted, not assumed.

Every job this script submits is cancelled, whatever happens.
Run: ``.venv/bin/python benchmarks/slurm_bench.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import batchml.backends.slurm.backend as slurm_module
from batchml.backends import JobSpec, JobState
from batchml.backends.commands import run_command
from batchml.backends.slurm import SlurmBackend
from batchml.backends.slurm.backend import parse_sbatch_output
from batchml.config.resources import Resources
from batchml.config.site_schema import Site

SERVICE_ENV = Path(os.environ.get("BATCHML_SERVICES_DIR", "/tmp/batchml-services")) / "slurm.env"
POLL_S = 0.02
WAIT_S = 60.0


def load_service_env() -> dict[str, str]:
    """SLURM_CONF and the partition of the running test Slurm, exported for the clients."""
    if not SERVICE_ENV.is_file():
        raise SystemExit(f"no {SERVICE_ENV}: start Slurm with 'bash tests/services/slurm.sh start'")
    pairs = dict(line.split("=", 1) for line in SERVICE_ENV.read_text().splitlines() if "=" in line)
    os.environ.update(pairs)
    return pairs


def wait_running(is_running: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not is_running():
        if time.monotonic() > deadline:
            raise SystemExit(f"a job did not start within {WAIT_S:.0f} s")
        time.sleep(POLL_S)


def batchml_latency(backend: SlurmBackend, folder: Path, index: int, made: list[str]) -> float:
    job = JobSpec(
        name=f"bench-latency-{index}",
        command=("sleep", "300"),
        resources=Resources.from_site(backend.site),
        workdir=folder / f"job-{index}",
    )
    start = time.perf_counter()
    made.extend(backend.submit(job))
    wait_running(lambda: backend.status(made[-1:])[made[-1]].state is JobState.RUNNING)
    elapsed = time.perf_counter() - start
    backend.cancel(made[-1:])
    return elapsed


def bare_latency(partition: str, folder: Path, made: list[str]) -> float:
    start = time.perf_counter()
    argv = ["sbatch", "--parsable", f"--partition={partition}", f"--chdir={folder}"]
    made.append(parse_sbatch_output(run_command([*argv, "--time=5", "--wrap=sleep 300"])))
    squeue = ["squeue", "-h", "-j", made[-1], "-o", "%T"]
    wait_running(lambda: run_command(squeue).strip() == "RUNNING")
    elapsed = time.perf_counter() - start
    run_command(["scancel", made[-1]])
    return elapsed


@contextmanager
def counted_calls() -> Iterator[list[str]]:
    """Every scheduler command the backend runs while inside, by program name."""
    calls: list[str] = []

    def counting(argv: Sequence[str], **kwargs: object) -> str:
        calls.append(argv[0])
        return run_command(argv, **kwargs)  # type: ignore[arg-type]

    slurm_module.run_command = counting  # type: ignore[assignment]
    try:
        yield calls
    finally:
        slurm_module.run_command = run_command


def polling_cost(backend: SlurmBackend, ids: list[str], cycles: int) -> tuple[float, float]:
    """Seconds and scheduler calls per status cycle of the backend over ``ids``."""
    with counted_calls() as calls:
        start = time.perf_counter()
        for _ in range(cycles):
            rows = backend.status(ids)
        seconds = (time.perf_counter() - start) / cycles
    held = sum(rows[i].state is JobState.HELD for i in ids)
    if held != len(ids):
        raise SystemExit(f"only {held} of {len(ids)} jobs are held: the queue changed")
    return seconds, len(calls) / cycles


def naive_polling_cost(ids: list[str]) -> float:
    """Seconds of one cycle that asks squeue about each job separately."""
    start = time.perf_counter()
    for job_id in ids:
        run_command(["squeue", "-h", "-j", job_id, "-o", "%T"])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-runs", type=int, default=5)
    parser.add_argument("--queued", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args(argv)
    env = load_service_env()
    partition = env["BATCHML_SLURM_PARTITION"]
    site = Site.model_validate(
        {
            "name": "bench",
            "scheduler": "slurm",
            "defaults": {"cores": 1, "memory": "200MB", "walltime": "5m"},
            "slurm": {"partition": partition, "signal_before_timeout": None},
        }
    )
    backend = SlurmBackend(site)
    made: list[str] = []
    with tempfile.TemporaryDirectory(dir=env["BATCHML_SLURM_SHARED"]) as tmp:
        folder = Path(tmp)
        try:
            ours = [batchml_latency(backend, folder, i, made) for i in range(args.latency_runs)]
            bare = [bare_latency(partition, folder, made) for _ in range(args.latency_runs)]
            held_argv = ["sbatch", "--parsable", "--hold", f"--partition={partition}"]
            for i in range(args.queued):
                job_argv = [*held_argv, f"--job-name=bench-held-{i}", "--time=1", "--wrap=true"]
                made.append(parse_sbatch_output(run_command([*job_argv, f"--chdir={folder}"])))
            held = made[-args.queued :]
            seconds, calls = polling_cost(backend, held, args.cycles)
            naive = naive_polling_cost(held)
        finally:
            for start in range(0, len(made), 100):
                run_command(["scancel", *made[start : start + 100]])
    ours_median, bare_median = statistics.median(ours), statistics.median(bare)
    print(f"submit-to-running, median of {args.latency_runs} (s):")
    print(f"  batchml submit + status polling  {ours_median:.3f}")
    print(f"  bare sbatch + squeue -j polling   {bare_median:.3f}")
    print(f"  ratio batchml / bare              {ours_median / bare_median:.2f}")
    print(f"status polling, {args.queued} held jobs (mean of {args.cycles} cycles):")
    print(f"  batchml: {calls:.0f} call(s) per cycle, {seconds:.3f} s per cycle")
    print(f"  naive:   {len(held)} calls per cycle, {naive:.3f} s per cycle")
    print(f"  ratio naive / batchml: calls {len(held) / calls:.0f}, seconds {naive / seconds:.1f}")


if __name__ == "__main__":
    main()
