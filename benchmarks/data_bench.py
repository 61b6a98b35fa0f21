"""Reading benchmarks of batchml.data: three ratios, each against a baseline run in this script.

Needs the local XRootD test server (``bash tests/services/xrootd.sh start``); the
sample (about 2 M entries, 20 numeric branches, 4 files) is generated once into
its export folder and reused. Run:

    .venv/bin/python benchmarks/data_bench.py [--events 2000000]

1. pipeline: XRootD -> shuffled torch batches, vs local uproot.iterate into numpy
   at the best step size (the limit on this machine). Target >= 0.9.
2. the pipeline vs a naive loop opening the file and calling arrays() per batch.
3. a training loop whose compute per batch equals the read time: prefetch vs none
   (compute is a sleep, as a GPU step leaves the CPU free). Target >= 1.7.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uproot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import read_service_env

from batchml.data import RootDataset
from batchml.data.synthetic import FLAT_FEATURES, write_sample

BATCH = 4096
STEP_SIZES: tuple[int | str, ...] = (100_000, "50 MB", "100 MB")


def rate(events: int, run: Callable[[], object]) -> float:
    began = time.perf_counter()
    run()
    return events / (time.perf_counter() - began)


def local_limit(files: list[str]) -> tuple[float, int | str]:
    """uproot.iterate into numpy, with a decompression pool: the best of a few step sizes."""
    best: tuple[float, int | str] = (0.0, STEP_SIZES[0])
    total = sum(uproot.open(f)["events"].num_entries for f in files)
    for step in STEP_SIZES:
        with ThreadPoolExecutor(2) as pool:
            events = rate(total, lambda s=step, p=pool: drain(files, s, p))
        best = max(best, (events, step), key=lambda pair: pair[0])
    return best


def drain(files: list[str], step: int | str, pool: ThreadPoolExecutor) -> None:
    for _ in uproot.iterate(
        {f: "events" for f in files},
        list(FLAT_FEATURES),
        step_size=step,
        library="np",
        decompression_executor=pool,
    ):
        pass


def pipeline(urls: str, step: int | str, prefetch: str | None, compute_s: float = 0.0) -> float:
    ds = RootDataset(
        urls,
        features=list(FLAT_FEATURES),
        target="label",
        weights="weight",
        batch_size=BATCH,
        step_size=step,
        range_entries=250_000,
        shuffle_buffer=100_000,
        seed=1,
        prefetch=prefetch,
        decompression_threads=2,
    )

    def loop() -> None:
        for _ in ds.loader():
            if compute_s:
                time.sleep(compute_s)

    return rate(ds.stream.num_entries, loop)


def naive(urls: list[str], per_file: int) -> float:
    def loop() -> None:
        for url in urls:
            for start in range(0, per_file, BATCH):
                with uproot.open(url, handler=uproot.source.xrootd.XRootDSource) as f:
                    f["events"].arrays(
                        list(FLAT_FEATURES),
                        entry_start=start,
                        entry_stop=start + BATCH,
                        library="np",
                    )

    return rate(len(urls) * per_file, loop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--naive-events", type=int, default=200_000, help="per run of case 2")
    args = parser.parse_args()
    env = read_service_env("xrootd")
    if env is None:
        sys.exit("start the server first: bash tests/services/xrootd.sh start")
    folder = Path(env["BATCHML_XROOTD_DATA"]) / f"bench-{args.events}"
    sample = write_sample(folder, args.events, files_per_class=2)
    files = sorted(str(p) for p in (*sample.signal, *sample.background))
    base = env["BATCHML_XROOTD_URL"].rstrip("/")
    remote = [f"{base}/{f}" for f in files]
    pattern = f"{base}/{folder}/*.root"

    limit, step = local_limit(files)
    full = pipeline(pattern, step, "256 MB")
    print(
        f"1. pipeline {full / 1e6:.2f} M ev/s vs local uproot {limit / 1e6:.2f} M ev/s "
        f"(step {step!r}): ratio {full / limit:.2f}"
    )
    plain = naive(remote, args.naive_events // len(remote))
    print(
        f"2. pipeline {full / 1e6:.2f} vs naive per-batch arrays {plain / 1e6:.3f} M ev/s: "
        f"ratio {full / plain:.1f}"
    )
    read_s = BATCH / pipeline(pattern, step, None)
    without = pipeline(pattern, step, None, compute_s=read_s)
    with_prefetch = pipeline(pattern, step, "256 MB", compute_s=read_s)
    print(
        f"3. training loop, compute {1e3 * read_s:.2f} ms/batch = read time: prefetch "
        f"{with_prefetch / 1e6:.2f} vs none {without / 1e6:.2f} M ev/s: "
        f"ratio {with_prefetch / without:.2f}"
    )


if __name__ == "__main__":
    main()
