"""Reading benchmarks of batchml.data: three ratios, each against a baseline run in this script.

Needs the local XRootD test server (``bash tests/services/xrootd.sh start``); the
sample (about 2 M entries, 20 numeric branches, 4 files) is generated once into
its export folder and reused. Run:

    .venv/bin/python benchmarks/data_bench.py [--events 2000000] [--rounds 5]

1. pipeline: XRootD -> shuffled torch batches (the default row buffer, 32 MB),
   vs local uproot.iterate into numpy at the best step size (the limit on this
   machine). Target >= 0.9.
   The baseline inflates ZLIB baskets as uproot does by default (the standard
   library's zlib); the pipeline has uproot use ISA-L (batchml.data.source), so
   the same baseline with ISA-L is printed too.
   Both read the same branches (the 20 features, the label and the weight) of
   the same files, both with a decompression pool of 2 threads, both warmed up
   first; each is the best of ``--rounds`` rounds over the same step sizes, run
   alternately so that load from other jobs falls on both. Also printed: uproot
   reading the same files over root:// without the pipeline, with ISA-L (the ceiling that
   XRootD leaves a pipeline here), the pipeline without its row buffer (what the
   shuffle buffer costs), and the spread of the per-round ratios.
   Every round of every case times two passes back to back (two epochs of the
   pipeline, as in training: the second starts with the chunk read ahead at the
   end of the first; nothing read before the clock starts is used).
2. the pipeline vs a naive loop opening the file and calling arrays() per batch.
3. a training loop whose compute per batch equals the read time: prefetch vs none
   (compute is a sleep, as a GPU step leaves the CPU free). Target >= 1.7.
   The read time per batch is that of the pipeline without prefetch and without
   compute (its best round); both loops then run alternately, best of the rounds.
   The pipeline reads in a process of its own at idle priority (the defaults);
   the same loop reading in threads, and reading at normal priority, is printed
   too; and, reading in a process or in threads, a loop whose step spends a
   third of its time in Python (holding the GIL, as launching kernels does).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import uproot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import read_service_env

from batchml._compat.uproot import inflate_library, set_inflate_library
from batchml.data import RootDataset
from batchml.demo.sample import FLAT_FEATURES, write_sample

BATCH = 4096
EPOCHS = 2  # per timed round, back to back, for every case of ratio 1 and 3
STEP_SIZES: tuple[int | str, ...] = (100_000, "50 MB", "100 MB")
TARGET, WEIGHT = "label", "weight"
BRANCHES = [*FLAT_FEATURES, TARGET, WEIGHT]  # what the pipeline reads, and so the baseline


def rate(events: int, run: Callable[[], object]) -> float:
    began = time.perf_counter()
    run()
    return events / (time.perf_counter() - began)


def passes(events: int, run: Callable[[], object]) -> float:
    """Events/s of ``EPOCHS`` runs back to back, as the pipeline is timed."""
    return rate(EPOCHS * events, lambda: [run() for _ in range(EPOCHS)])


def iterate(files: list[str], step: int | str, inflate: str = "zlib", **options: Any) -> None:
    """uproot.iterate into numpy with a decompression pool: the baseline.

    inflate: the library uproot inflates ZLIB baskets with ('zlib' is its default).
    """
    chosen = inflate_library() or "zlib"
    set_inflate_library(inflate)
    with ThreadPoolExecutor(2) as pool:
        for _ in uproot.iterate(
            {f: "events" for f in files},
            BRANCHES,
            step_size=step,
            library="np",
            decompression_executor=pool,
            **options,
        ):
            pass
    set_inflate_library(chosen)


def dataset(urls: str, step: int | str, prefetch: str | None, **options: Any) -> RootDataset:
    """The pipeline as a training job builds it: the default row buffer unless ``options`` say."""
    return RootDataset(
        urls,
        features=list(FLAT_FEATURES),
        target=TARGET,
        weights=WEIGHT,
        batch_size=BATCH,
        step_size=step,
        range_entries=200_000,  # whole steps of 100k: no short read ending a range
        seed=1,
        prefetch=prefetch,
        decompression_threads=2,
        **options,
    )


def python_step(seconds: float) -> None:
    """A training step that spends a third of its time in Python (launching kernels,
    holding the GIL) and the rest waiting on the GPU."""
    end = time.perf_counter() + seconds / 3
    while time.perf_counter() < end:
        pass
    time.sleep(2 * seconds / 3)


def pipeline(
    ds: RootDataset,
    compute_s: float = 0.0,
    epochs: int = EPOCHS,
    step: Callable[[float], None] = time.sleep,
) -> float:
    """Events/s of ``epochs`` epochs back to back through the DataLoader (new shuffle each).

    As in training, each epoch after the first begins with the chunk the reader
    read ahead at the end of the one before. Nothing read before the clock
    starts is used, and what is read ahead for the epoch after the last is
    waited for and dropped before the next case runs.
    """

    def loop() -> None:
        for _ in range(epochs):
            ds.set_epoch(ds.epoch + 1)
            for _ in ds.loader():
                if compute_s:
                    step(compute_s)

    ds.stream.drop_read_ahead()
    events = rate(epochs * ds.stream.num_entries, loop)
    ds.stream.drop_read_ahead()
    return events


def first_batch_s(ds: RootDataset, compute_s: float, rounds: int) -> tuple[float, float]:
    """Median seconds to an epoch's first batch: started cold, and right after another epoch.

    The loop computes ``compute_s`` per batch, as in case 3.
    """
    cold, after = [], []
    for _ in range(rounds):
        ds.stream.drop_read_ahead()
        for waits in (cold, after):
            ds.set_epoch(ds.epoch + 1)
            began = time.perf_counter()
            batches = iter(ds.loader())
            next(batches)
            waits.append(time.perf_counter() - began)
            for _ in batches:
                time.sleep(compute_s)
    ds.stream.drop_read_ahead()
    return statistics.median(cold), statistics.median(after)


def naive(urls: list[str], per_file: int) -> float:
    def loop() -> None:
        for url in urls:
            for start in range(0, per_file, BATCH):
                with uproot.open(url, handler=uproot.source.xrootd.XRootDSource) as f:
                    f["events"].arrays(
                        BRANCHES, entry_start=start, entry_stop=start + BATCH, library="np"
                    )

    return rate(len(urls) * per_file, loop)


def best(rates: dict[Any, list[float]]) -> tuple[float, Any]:
    """The highest rate and the setting that gave it."""
    return max((max(values), key) for key, values in rates.items())


def spread(ratios: list[float]) -> str:
    return f"per round {min(ratios):.2f}-{max(ratios):.2f}, median {statistics.median(ratios):.2f}"


def exported(name: str) -> tuple[Path, str]:
    """A folder of this name in the XRootD test server's export, and the server's URL."""
    env = read_service_env("xrootd")
    if env is None:
        sys.exit("start the server first: bash tests/services/xrootd.sh start")
    return Path(env["BATCHML_XROOTD_DATA"]) / name, env["BATCHML_XROOTD_URL"].rstrip("/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs per case")
    parser.add_argument("--naive-events", type=int, default=200_000, help="per run of case 2")
    args = parser.parse_args()
    folder, base = exported(f"bench-{args.events}")
    sample = write_sample(folder, args.events, files_per_class=2)
    files = sorted(str(p) for p in (*sample.signal, *sample.background))
    remote = [f"{base}/{f}" for f in files]
    pattern = f"{base}/{folder}/*.root"
    total = sum(uproot.open(f)["events"].num_entries for f in files)
    xrootd = {"handler": uproot.source.xrootd.XRootDSource}
    datasets = {step: dataset(pattern, step, "256 MB") for step in STEP_SIZES}

    # warm-up: page cache, server, XRootD connection, imports, thread pools
    iterate(files, STEP_SIZES[0])
    iterate(remote, STEP_SIZES[0], **xrootd)
    pipeline(datasets[STEP_SIZES[0]])

    local: dict[int | str, list[float]] = {step: [] for step in STEP_SIZES}
    local_isal: dict[int | str, list[float]] = {step: [] for step in STEP_SIZES}
    over: dict[int | str, list[float]] = {step: [] for step in STEP_SIZES}
    full: dict[int | str, list[float]] = {step: [] for step in STEP_SIZES}
    unbuffered: dict[int | str, list[float]] = {step: [] for step in STEP_SIZES}
    no_buffer = {step: dataset(pattern, step, "256 MB", shuffle_buffer=0) for step in STEP_SIZES}
    paired: list[float] = []
    for _ in range(args.rounds):
        for step in STEP_SIZES:
            local[step].append(passes(total, lambda s=step: iterate(files, s)))
            local_isal[step].append(passes(total, lambda s=step: iterate(files, s, "isal")))
            over[step].append(passes(total, lambda s=step: iterate(remote, s, "isal", **xrootd)))
            full[step].append(pipeline(datasets[step]))
            unbuffered[step].append(pipeline(no_buffer[step]))
            paired.append(full[step][-1] / local[step][-1])
    limit, limit_step = best(local)
    limit_isal, isal_step = best(local_isal)
    ceiling, ceiling_step = best(over)
    fastest, step = best(full)
    print(
        f"1. pipeline (XRootD -> shuffled torch) {fastest / 1e6:.2f} M ev/s (step {step!r}) "
        f"vs baseline local uproot.iterate into numpy {limit / 1e6:.2f} M ev/s "
        f"(step {limit_step!r}): ratio {fastest / limit:.2f} (target >= 0.9; at equal "
        f"step size {spread(paired)})"
    )
    print(
        f"   the same baseline with ISA-L: {limit_isal / 1e6:.2f} M ev/s (step {isal_step!r}), "
        f"ratio {limit_isal / limit:.2f} of zlib's; pipeline vs it: ratio "
        f"{fastest / limit_isal:.2f}"
    )
    print(
        f"   ceiling: uproot.iterate over root:// without the pipeline {ceiling / 1e6:.2f} "
        f"M ev/s (step {ceiling_step!r}) vs the same baseline: ratio {ceiling / limit:.2f}; "
        f"pipeline vs it: ratio {fastest / ceiling:.2f}"
    )
    rows, rows_step = best(unbuffered)
    print(
        f"   without the row buffer (entry ranges still shuffled, shuffle_buffer=0): "
        f"{rows / 1e6:.2f} M ev/s (step {rows_step!r}), ratio {rows / limit:.2f} of the baseline"
    )

    plain = naive(remote, args.naive_events // len(remote))
    print(
        f"2. pipeline {fastest / 1e6:.2f} M ev/s vs baseline naive per-batch "
        f"uproot.open(url)[tree].arrays() {plain / 1e6:.3f} M ev/s: ratio {fastest / plain:.1f}"
    )

    bare = dataset(pattern, step, None)
    read_s = BATCH / max(pipeline(bare) for _ in range(args.rounds))
    prefetched = datasets[step]
    threads = dataset(pattern, step, "256 MB", prefetch_in="thread")
    variants = {
        "reading in threads instead of a process (prefetch_in='thread')": threads,
        "reading at normal priority (reader_priority='normal')": dataset(
            pattern, step, "256 MB", reader_priority="normal"
        ),
    }
    for variant in variants.values():
        pipeline(variant)
    without, with_prefetch, pairs = [], [], []
    others: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        without.append(pipeline(bare, compute_s=read_s))
        with_prefetch.append(pipeline(prefetched, compute_s=read_s))
        for name, variant in variants.items():
            others[name].append(pipeline(variant, compute_s=read_s))
        pairs.append(with_prefetch[-1] / without[-1])
    print(
        f"3. training loop, compute {1e3 * read_s:.2f} ms/batch = read time: prefetch "
        f"{max(with_prefetch) / 1e6:.2f} M ev/s vs baseline no prefetch "
        f"{max(without) / 1e6:.2f} M ev/s: ratio {max(with_prefetch) / max(without):.2f} "
        f"(target >= 1.7; {spread(pairs)})"
    )
    for name, rates in others.items():
        print(
            f"   the same, {name}: {max(rates) / 1e6:.2f} M ev/s, "
            f"ratio {max(rates) / max(without):.2f}"
        )
    steps: dict[str, list[float]] = {"none": [], "process": [], "threads": []}
    for _ in range(args.rounds):
        for name, ds in (("none", bare), ("process", prefetched), ("threads", threads)):
            steps[name].append(pipeline(ds, compute_s=read_s, step=python_step))
    print(
        f"   a step that spends a third of its time in Python: prefetch in a process "
        f"ratio {max(steps['process']) / max(steps['none']):.2f}, in threads "
        f"{max(steps['threads']) / max(steps['none']):.2f}"
    )
    cold, after = first_batch_s(prefetched, read_s, args.rounds)
    print(
        f"   an epoch's first batch, median: {1e3 * cold:.1f} ms started cold, "
        f"{1e3 * after:.1f} ms right after another epoch (the loop of case 3)"
    )


if __name__ == "__main__":
    main()
