"""What recording a trial's I/O profile costs a training step: the ratio, and the CPU it takes.

Recording is (a) per batch, the loop's clock: ``timed`` reads the clock twice and
adds to two numbers of the training process; and (b) per report, a trial
process's ``record_io``: the totals of its datasets, the attribute's JSON and
one round trip through the pipe to its worker. Training steps are the demo's
(demo_training.Classifier with Adam, one torch thread) on batches read once
from a local synthetic sample beforehand, so that no reading is timed.

Timings are CPU time of the training thread (``time.thread_time``), not wall
time: on a loaded machine the wall time of the same step varies by more than
the recording costs, while a thread's CPU time counts only what the thread ran.
Two measurements, both in one run:

1. step ratio: rounds of ``--steps`` steps with and without the recording,
   alternated; the median of the per-round ratios of CPU time (what a trial sees,
   noise included).
2. recording alone: the CPU time of (a) over many batches with an empty loop
   body, less that of the same plain loop, per batch; plus (b)'s CPU time per
   call (the worker's side, another process in a trial, answers from a thread
   here and is not counted) divided by the steps of one report (the demo's
   epoch: 150,000 events). That divided by the step's CPU time is the overhead.

    .venv/bin/python benchmarks/io_recording_bench.py [--steps 300] [--rounds 7]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from batchml.data import RootDataset
from batchml.data.loader_stats import SharedCounters, register, timed
from batchml.demo.sample import FLAT_FEATURES, write_sample
from batchml.demo.training import Classifier
from batchml.hpo.isolation import ProxyTrial

EPOCH_EVENTS = 150_000  # the demo's Budget.epoch_events: events between two reports
# (batch size, width, depth): the demo's cheapest step, a middle one, its costliest
SHAPES = ((256, 16, 1), (512, 64, 2), (2048, 128, 4))
CALLS = 200_000  # loop iterations timed for (a)
REPORTS = 2_000  # record_io calls timed for (b)


def batches(events: int, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of the synthetic sample, read once with RootDataset (none is read while timed)."""
    with tempfile.TemporaryDirectory(prefix="batchml-io-bench-") as folder:
        sample = write_sample(Path(folder), events, files_per_class=2)
        files = [str(f) for f in (*sample.signal, *sample.background)]
        dataset = RootDataset(files, features=list(FLAT_FEATURES), target="label",
                              batch_size=size, output="numpy", prefetch=None)  # fmt: skip
        found = [(torch.from_numpy(b.features), torch.from_numpy(b.target)) for b in dataset]
    return [b for b in found if len(b[1]) == size]


def trainer(width: int, depth: int) -> Callable[[tuple[torch.Tensor, torch.Tensor]], None]:
    model = Classifier(len(FLAT_FEATURES), width, depth, dropout=0.1)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        features, target = batch
        loss = functional.binary_cross_entropy_with_logits(model.logits(features), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return step


def connected_trial() -> ProxyTrial:
    """A ProxyTrial whose worker end answers every call from a thread, as a worker would."""
    here, there = multiprocessing.Pipe()

    def serve() -> None:
        while True:
            try:
                there.recv()
            except EOFError:
                return
            there.send(("ok", None))

    threading.Thread(target=serve, daemon=True).start()
    return ProxyTrial(here, 0, {})


def cpu_of(run: Callable[[], None]) -> float:
    began = time.thread_time()
    run()
    return time.thread_time() - began


def loop(items: Iterable[Any], step: Callable[[Any], None]) -> Callable[[], None]:
    def run() -> None:
        for item in items:
            step(item)

    return run


def step_ratio(
    data: list[Any],
    step: Callable[[Any], None],
    trial: ProxyTrial,
    counters: SharedCounters,
    steps: int,
    rounds: int,
) -> tuple[float, float, float]:
    """Median, min and max over rounds of CPU(with recording) / CPU(without)."""
    per_report = max(1, EPOCH_EVENTS // len(data[0][1]))

    def recorded() -> Iterator[Any]:
        for index, item in enumerate(timed(iter(data[:steps]), counters)):
            yield item
            if index % per_report == per_report - 1:
                trial.record_io()

    ratios = []
    for _ in range(rounds):
        without = cpu_of(loop(data[:steps], step))
        with_recording = cpu_of(loop(recorded(), step))
        ratios.append(with_recording / without)
    return statistics.median(ratios), min(ratios), max(ratios)


def recording_per_step(trial: ProxyTrial, counters: SharedCounters, batch: int) -> float:
    """CPU seconds the recording adds to one step: (a) per batch + (b) per report / steps."""
    items = [None] * CALLS
    plain = min(cpu_of(loop(items, lambda _: None)) for _ in range(3))
    clocked = min(cpu_of(loop(timed(iter(items), counters), lambda _: None)) for _ in range(3))
    per_batch = max(0.0, clocked - plain) / CALLS
    per_report = cpu_of(lambda: [trial.record_io() for _ in range(REPORTS)]) / REPORTS
    return per_batch + per_report / max(1, EPOCH_EVENTS // batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the demo's trials
    counters = SharedCounters(["local"])
    register(counters, counters)  # a "dataset" with reads, so that record_io writes
    counters.read(0, 0.1, 1_000_000, 10_000)
    counters.add(batches=10)
    trial = connected_trial()
    print(f"{'batch':>6} {'width':>5} {'depth':>5} {'step CPU ms':>11} "
          f"{'recording CPU us/step':>21} {'recording/step':>14} "
          f"{'step ratio (min-max)':>22}")  # fmt: skip
    for size, width, depth in SHAPES:
        data = batches(max(40_000, (args.steps + 10) * size), size)
        step = trainer(width, depth)
        loop(data[:20], step)()  # warm up
        step_cpu = statistics.median(
            cpu_of(loop(data[: args.steps], step)) / args.steps for _ in range(3)
        )
        recording = recording_per_step(trial, counters, size)
        median, low, high = step_ratio(data, step, trial, counters, args.steps, args.rounds)
        print(f"{size:>6} {width:>5} {depth:>5} {1e3 * step_cpu:>11.3f} "
              f"{1e6 * recording:>21.2f} {100 * recording / step_cpu:>13.3f}% "
              f"{median:>10.4f} ({low:.4f}-{high:.4f})")  # fmt: skip
    per_call = cpu_of(lambda: [trial.record_io() for _ in range(REPORTS)]) / REPORTS
    print(f"record_io: {1e6 * per_call:.0f} us of CPU per report (of the trial's thread)")
    print(f"numpy {np.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
