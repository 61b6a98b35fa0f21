"""`batchml demo`: the main job, end to end, on the embedded default (this machine).

What it runs grows as the pipeline lands. Today: resolve the `local` site,
write the signal/background ROOT sample (or reuse it), start a local dask
cluster sized from the site, read every file on the workers with uproot, and
rank the features by how well they separate the classes. Each stage prints its
time, so a slow stage shows at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from batchml.data.synthetic import FLAT_FEATURES, SampleFiles, write_sample
from batchml.site_files import load_site
from batchml.units import format_size


@contextmanager
def _stage(out: Console, title: str, timings: dict[str, float]) -> Iterator[None]:
    out.rule(f"[bold]{title}")
    start = time.perf_counter()
    yield
    timings[title] = time.perf_counter() - start
    out.print(f"[dim]{title}: {timings[title]:.1f} s[/dim]")


def summarize_file(path: str, tree: str, features: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per-class count, sum and sum of squares of each feature in one file (runs on a worker)."""
    import uproot

    sums = {
        "n": np.zeros(2),
        "sum": np.zeros((2, len(features))),
        "sumsq": np.zeros((2, len(features))),
    }
    for batch in uproot.iterate(
        f"{path}:{tree}", [*features, "label"], library="np", step_size="50 MB"
    ):
        label = batch["label"]
        values = np.stack([batch[f].astype(np.float64) for f in features], axis=1)
        for cls in (0, 1):
            rows = values[label == cls]
            sums["n"][cls] += len(rows)
            sums["sum"][cls] += rows.sum(axis=0)
            sums["sumsq"][cls] += (rows**2).sum(axis=0)
    return sums


def run_demo(*, out: Console, workdir: str, events: int, files: int, workers: int) -> int:
    """Run every stage that exists; returns the exit status."""
    timings: dict[str, float] = {}
    root = Path(workdir).resolve()
    site = load_site("local").site
    out.print(f"batchml demo in {root} on site [bold]{site.name}[/bold] ({site.scheduler})")

    with _stage(out, "1. sample", timings):
        sample = _write_sample_with_progress(root / "data", events, files, out)
        size = sum(p.stat().st_size for p in (*sample.signal, *sample.background))
        out.print(
            f"{len(sample.signal) + len(sample.background)} ROOT files, {format_size(size)} "
            f"in {root / 'data'}"
        )

    with _stage(out, "2. read on a local dask cluster", timings):
        totals = _summarize_on_dask(sample, workers, site.defaults.memory, out)

    table = Table(
        "feature", "signal mean", "background mean", "separation", title="Feature separation"
    )
    mean = totals["sum"] / totals["n"][:, None]
    std = np.sqrt(np.maximum(totals["sumsq"] / totals["n"][:, None] - mean**2, 0.0))
    separation = np.abs(mean[1] - mean[0]) / np.sqrt(std[0] ** 2 + std[1] ** 2)
    for i in np.argsort(-separation):
        table.add_row(
            FLAT_FEATURES[i], f"{mean[1, i]:.3g}", f"{mean[0, i]:.3g}", f"{separation[i]:.3f}"
        )
    out.print(table)
    out.print(f"events read: {int(totals['n'][1])} signal, {int(totals['n'][0])} background")
    out.print("stage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    out.print("next: [bold]batchml site list[/bold], [bold]batchml site show lxplus[/bold]")
    return 0


def _write_sample_with_progress(folder: Path, events: int, files: int, out: Console) -> SampleFiles:
    columns = [
        TextColumn("writing events"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=out, transient=False) as bar:
        task = bar.add_task("sample", total=2 * files * max(1, events // (2 * files)))
        return write_sample(folder, events, files, progress=lambda n: bar.advance(task, n))


def _summarize_on_dask(
    sample: SampleFiles, workers: int, memory: int, out: Console
) -> dict[str, np.ndarray]:
    from distributed import Client, LocalCluster, as_completed

    paths = [str(p) for p in (*sample.signal, *sample.background)]
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            memory_limit=memory,
            dashboard_address=None,
            host="127.0.0.1",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        out.print(f"dask cluster with {workers} workers at {cluster.scheduler_address}")
        futures = [
            client.submit(summarize_file, p, sample.tree, FLAT_FEATURES, pure=False) for p in paths
        ]
        totals: dict[str, np.ndarray] = {}
        with Progress(
            TextColumn("reading files"), BarColumn(), MofNCompleteColumn(), console=out
        ) as bar:
            task = bar.add_task("read", total=len(futures))
            for future in as_completed(futures):
                part = future.result()
                totals = {k: totals.get(k, 0) + v for k, v in part.items()}
                bar.advance(task)
    return totals
