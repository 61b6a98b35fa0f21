"""RNTuple against TTree through the pipeline: the same events in both formats, local and remote.

Needs the local XRootD test server (``bash tests/services/xrootd.sh start``); the
samples are written once into its export folder and reused. Run:

    .venv/bin/python benchmarks/rntuple_bench.py [--events 1000000] [--rounds 3]

The events are the synthetic sample of ``data_bench.py`` (20 float features, a
label, a weight and three jagged jet branches, ZLIB 1, 4 files), written as
TTrees (baskets of 50k entries) and copied into RNTuples (clusters of 50k).

1. The pipeline (RootDataset -> shuffled torch batches, its defaults) on the
   RNTuples / on the TTrees, reading the 20 features, label and weight; locally
   and over root://. Target >= 0.9. Also with the jets padded to 4 columns each.
2. uproot alone (``uproot.iterate`` into numpy, pool of 2, ISA-L as the
   pipeline, the same step sizes), RNTuple / TTree: what uproot itself gives.
3. Construction (files opened, entries counted, branches checked) of the
   pipeline on each format, and on a NanoAOD-like RNTuple of ``--fields``
   fields: the pipeline reads the header's records of the fields it is asked
   for, against uproot alone listing the fields (``keys()``) and reading them.
Every case of 1 and 2 is the best of ``--rounds`` rounds, both formats run
alternately within each round, so that load from other jobs falls on both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from data_bench import exported, iterate, passes, pipeline

from batchml.data import RootDataset
from batchml.demo.sample import FLAT_FEATURES, write_sample

BATCH = 4096
CLUSTER = 50_000
STEP_SIZES: tuple[int | str, ...] = (100_000, "50 MB")
JAGGED = {"jet_pt": 4, "jet_eta": 4, "jet_btag": 4}
FORMATS = ("ttree", "rntuple")


def as_rntuples(ttrees: list[Path], folder: Path) -> list[Path]:
    """Each TTree file copied into an RNTuple file of the same events, once."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for source in ttrees:
        target = folder / source.name
        if not target.exists():
            partial = target.with_name(f".{target.name}.partial")
            with (
                uproot.open(source) as file,
                uproot.recreate(partial, compression=uproot.ZLIB(1)) as out,
            ):
                tree = file["events"]
                ntuple = None
                for arrays in tree.iterate(step_size=CLUSTER, library="ak"):
                    if ntuple is None:
                        ntuple = out.mkrntuple("events", arrays.layout.form)
                    ntuple.extend(arrays)
            partial.rename(target)
        target.chmod(0o644)
        copies.append(target)
    folder.chmod(0o755)
    return copies


def many_fields(folder: Path, fields: int, entries: int) -> dict[str, Path]:
    """A NanoAOD-like file of ``fields`` float fields (as TTree and as RNTuple), once."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    names = [f"Obj{i // 10}_var{i % 10}" for i in range(fields)]
    paths = {kind: folder / f"wide-{fields}-{kind}.root" for kind in FORMATS}
    for kind, path in paths.items():
        if path.exists():
            continue
        data = {name: rng.random(entries).astype(np.float32) for name in names}
        partial = path.with_name(f".{path.name}.partial")
        with uproot.recreate(partial, compression=uproot.ZLIB(1)) as out:
            if kind == "rntuple":
                out.mkrntuple("events", ak.Array(data).layout.form).extend(ak.Array(data))
            else:
                out.mktree("events", {n: np.float32 for n in names}).extend(data)
        partial.rename(path)
        path.chmod(0o644)
    folder.chmod(0o755)
    return paths


def dataset(urls: list[str], step: int | str, **options: Any) -> RootDataset:
    return RootDataset(
        urls,
        features=list(FLAT_FEATURES),
        target="label",
        weights="weight",
        batch_size=BATCH,
        step_size=step,
        range_entries=200_000,
        seed=1,
        decompression_threads=2,
        **options,
    )


def best_of(rounds: int, cases: dict[str, Callable[[], float]]) -> dict[str, float]:
    """The best rate of each case over ``rounds`` rounds, the cases alternating in each."""
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            rates[name].append(run())
    return {name: max(values) for name, values in rates.items()}


def timed(run: Callable[[], object], rounds: int) -> float:
    """Median seconds of ``run`` over ``rounds`` runs."""
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def ratio_line(label: str, rates: dict[str, float], key: str) -> str:
    tree, ntuple = rates[f"ttree {key}"], rates[f"rntuple {key}"]
    return (
        f"{label}: RNTuple {ntuple / 1e6:.2f} M ev/s vs baseline TTree {tree / 1e6:.2f} M ev/s: "
        f"ratio {ntuple / tree:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fields", type=int, default=1300, help="of the NanoAOD-like RNTuple")
    args = parser.parse_args()
    folder, base = exported(f"rntuple-bench-{args.events}")
    sample = write_sample(folder / "ttree", args.events, files_per_class=2)
    files = {"ttree": sorted([*sample.signal, *sample.background])}
    files["rntuple"] = as_rntuples(files["ttree"], folder / "rntuple")
    (folder / "ttree").chmod(0o755)
    folder.chmod(0o755)
    urls = {
        (kind, where): [str(f) if where == "local" else f"{base}/{f}" for f in files[kind]]
        for kind in FORMATS
        for where in ("local", "root://")
    }
    xrootd = {"handler": uproot.source.xrootd.XRootDSource}

    pipelines = {
        f"{kind} {where} {step}": dataset(urls[kind, where], step)
        for kind in FORMATS
        for where in ("local", "root://")
        for step in STEP_SIZES
    }
    jagged = {
        f"{kind} jagged": dataset(urls[kind, "local"], 100_000, jagged=JAGGED) for kind in FORMATS
    }
    for ds in (*pipelines.values(), *jagged.values()):  # warm-up: page cache, server, pools
        pipeline(ds)
    cases: dict[str, Callable[[], float]] = {}
    for name, ds in {**pipelines, **jagged}.items():
        cases[name] = lambda ds=ds: pipeline(ds)
    for kind in FORMATS:
        for step in STEP_SIZES:
            for where, options in (("local", {}), ("root://", xrootd)):

                def alone(k: str = kind, w: str = where, s: Any = step, o: Any = options) -> float:
                    return passes(args.events, lambda: iterate(urls[k, w], s, "isal", **o))

                cases[f"{kind} uproot {where} {step}"] = alone
    rates = best_of(args.rounds, cases)
    for kind in FORMATS:  # best over the step sizes
        for key in ("local", "root://", "uproot local", "uproot root://"):
            rates[f"{kind} {key}"] = max(rates[f"{kind} {key} {s}"] for s in STEP_SIZES)
    print(f"{args.events:,} events, 4 files; best of {args.rounds} rounds, step sizes {STEP_SIZES}")
    print("1. " + ratio_line("pipeline, local files", rates, "local") + " (target >= 0.9)")
    print("   " + ratio_line("pipeline, over root://", rates, "root://") + " (target >= 0.9)")
    print("   " + ratio_line("pipeline with 3 jagged branches padded to 4, local", rates, "jagged"))
    print("2. " + ratio_line("uproot.iterate alone, local files", rates, "uproot local"))
    print("   " + ratio_line("uproot.iterate alone, over root://", rates, "uproot root://"))
    for kind in FORMATS:
        share = rates[f"{kind} local"] / rates[f"{kind} uproot local"]
        print(f"   {kind}: pipeline / uproot alone, local: {share:.2f}")

    build = {
        kind: timed(lambda k=kind: dataset(urls[k, "root://"], 100_000), 3) for kind in FORMATS
    }
    print(
        f"3. construction over root:// (4 files opened, checked, counted), median of 3: "
        f"TTree {build['ttree']:.3f} s, RNTuple {build['rntuple']:.3f} s"
    )
    wide = many_fields(folder / "wide", args.fields, 20_000)
    asked = [f"Obj{i}_var0" for i in range(5)]
    for kind, path in wide.items():
        remote = f"{base}/{path}"
        listing = timed(lambda r=remote: uproot.open(r, **xrootd)["events"].keys(), 3)
        reading = timed(lambda r=remote: uproot.open(r, **xrootd)["events"].arrays(asked), 3)
        built = timed(lambda r=remote: RootDataset(r, features=asked, prefetch=None), 3)
        ds = RootDataset(remote, features=asked, prefetch=None)
        epoch = timed(lambda d=ds: [None for _ in d.loader()], 3)
        print(
            f"   {args.fields} fields, {kind}, 5 asked for, median of 3: uproot alone "
            f"open+keys() {listing:.2f} s, open+arrays(5) {reading:.2f} s; pipeline "
            f"construction {built:.2f} s, an epoch of 20,000 entries {epoch:.2f} s"
        )


if __name__ == "__main__":
    main()
