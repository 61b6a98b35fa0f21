"""`batchml demo`: the main job end to end, on the embedded default or on a named site.

The stages a user walks, each timed and printed: write (or reuse) the
signal/background sample, or take ``--data`` files; plan the data, count each
part's events per class and compute the normalisation from the training split;
search hyper-parameters with trials on dask workers (``run_study``); score the
best model on held-out events and on training events read for the normalisation;
publish it to a registry folder in the workdir with its lineage and the
``production`` alias; package it; serve it with ``BatchedSession``; write
``report.html``. The model, objective and splits are in training.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import optuna
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from batchml._fs import check_destination
from batchml.config.site_lookup import load_site
from batchml.data import FeatureStats, xrootd
from batchml.data.stream import Batch
from batchml.demo.evaluation import Scored, evaluate
from batchml.demo.report_page import DemoRun, add_run, demo_report
from batchml.demo.sample import FLAT_FEATURES, SampleFiles, write_sample
from batchml.demo.serving import Serving, serve
from batchml.demo.training import (
    CHECKPOINT_ATTR,
    SEARCH_SPACE,
    Budget,
    Classifier,
    DataSpec,
    Events,
    Normaliser,
    count_events,
    load_checkpoint,
    objective,
    read_part,
)
from batchml.errors import InvalidValue
from batchml.hpo import publish_best
from batchml.hpo.report import format_value
from batchml.package import BuildOptions, build
from batchml.registry import ModelVersion, Registry

MODEL_NAME = "demo-mlp"
SAMPLE_BRANCHES = (*FLAT_FEATURES, SampleFiles.weight)  # what --features and --weight may name
STATS_EVENTS = 200_000  # enough for means and widths to 0.5 %, a second to read
TRAIN_SAMPLE_EVENTS = 100_000  # of those, kept for the overtraining check: held-out size


@dataclass(frozen=True)
class DemoOptions:
    """The demo's knobs, as the CLI flags name them."""

    workdir: Path
    events: int = 1_000_000
    files: int = 8
    trials: int = 16
    workers: int = 2
    site: str = "local"
    data: tuple[str, ...] = ()
    xrootd: str | None = None
    tree: str = "events"
    target: str = "label"
    features: tuple[str, ...] = ()  # empty: the sample's FLAT_FEATURES
    weight: str | None = None  # event-weight branch; None: the sample's, or none with --data
    budget: Budget = field(default_factory=Budget)

    def __post_init__(self) -> None:
        sizes = {"--trials": self.trials, "--workers": self.workers, "--files": self.files}
        if min(sizes.values()) < 1 or self.events < 2 * self.files:
            raise InvalidValue(
                f"{sizes}, --events {self.events}: sizes must be positive",
                hint="use at least one trial, worker and file, and two events per file",
            )


@contextmanager
def _stage(out: Console, title: str, timings: dict[str, float]) -> Iterator[float]:
    """Times the block into ``timings[title]``; yields when it started (perf_counter)."""
    out.rule(f"[bold]{title}")
    start = time.perf_counter()
    yield start
    timings[title] = time.perf_counter() - start
    out.print(f"[dim]{title}: {timings[title]:.1f} s[/dim]")


def run_demo(out: Console, options: DemoOptions) -> int:
    """Run every stage; returns the exit status (errors are raised as BatchmlError)."""
    timings: dict[str, float] = {}
    site = load_site(options.site).site
    _check_inputs(options)  # every bad option fails here, before the workdir is made
    root = options.workdir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    out.print(f"batchml demo in {root} on site [bold]{site.name}[/bold] ({site.scheduler})")

    with _stage(out, "1. sample", timings):
        files = _input_files(options, root, out)
    with _stage(out, "2. data: split and normalisation", timings):
        features = options.features or FLAT_FEATURES
        weight = options.weight or (None if options.data else SampleFiles.weight)
        data = DataSpec(files, options.tree, features, options.target,
                        str(root / "feature_stats.json"), weight)  # fmt: skip
        stats, train_sample = _feature_stats(data, out)
        counts = count_events(data)
        out.print(f"training {sum(counts.training):,}, validation {sum(counts.validation):,}, "
                  f"held-out {sum(counts.test):,} events")  # fmt: skip
    with _stage(out, "3. hyper-parameter search", timings):
        journal = root / "hpo" / "studies.journal"
        study = _search(data, options, options.site, journal)  # a path stays a path
        best = study.best_trial
        out.print(
            f"best trial {best.number}: validation loss {best.value:.4f}, "
            + ", ".join(f"{k} {format_value(v)}" for k, v in best.params.items())
        )
    with _stage(out, "4. held-out evaluation", timings), out.status("scoring held-out events"):
        model, params = load_checkpoint(best.user_attrs[CHECKPOINT_ATTR], len(data.features))
        test = read_part(data, "test")
        normalise = Normaliser(stats)
        held_out, training = (_scored(model, normalise, e) for e in (test, train_sample))
        evaluation = evaluate(held_out, training, weighted=weight is not None)
        auc = evaluation.auc
        weighted = f"; weighted by {weight!r}: {evaluation.curve.auc:.4f}" if weight else ""
        out.print(f"test AUC {auc:.4f} on {len(test.target):,} held-out events{weighted}; "
                  "KS p-values (training vs held-out) "
                  + ", ".join(f"{k.name} {k.p_value:.3g}" for k in evaluation.ks))  # fmt: skip
    with _stage(out, "5. publish", timings), out.status("publishing to the registry"):
        registry = Registry(root / "registry")
        version = publish_best(
            study, registry, MODEL_NAME, model,
            input_example=normalise(test.features[:16]), input_names=["features"],
            variables={"features": list(data.features)}, preprocessing=stats.to_dict(),
            metrics={"val_loss": study.best_value, "test_auc": auc}, params=params,
            lineage={"data": _data_lineage(files), "site": site.name},
            description=f"best of {len(study.trials)} trials of `batchml demo`",
        )  # fmt: skip
        out.print(f"published {version.uri} as {MODEL_NAME}@production in {registry.root}")
    with _stage(out, "6. package", timings):
        package = _package(registry, version, root, out)
    with _stage(out, "7. batched inference", timings), out.status("serving held-out events"):
        serving = serve(package, test.features, test.target)
        _print_serving(out, serving)
    with _stage(out, "8. report", timings) as started:
        path = root / "report.html"
        products = {
            **({} if options.data else {"sample": root / "data"}),
            "feature statistics": Path(data.stats_path),
            "study journal": journal,
            "best checkpoint": Path(best.user_attrs[CHECKPOINT_ATTR]),
            "registry": registry.root,
            "registry version": version.path,
            "package": package,
        }
        run = DemoRun(
            f"batchml demo: {MODEL_NAME} on site {site.name}", data, stats, counts, evaluation,
            study, version, serving, package,
        )  # fmt: skip
        report = demo_report(run)
        timings["8. report"] = time.perf_counter() - started  # the page shows its own stage
        add_run(report, timings, products)
        report.write(path)
        out.print(f"wrote {path}")
    total = sum(timings.values())
    out.print("stage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    out.print(f"total {total:.1f} s; test AUC {auc:.4f}; package AUC {serving.auc:.4f}")
    _print_next(out, registry.root, package, path)
    return 0


def _check_inputs(options: DemoOptions) -> None:
    """The workdir, the XRootD URL, and the branches of --data (opened) or of the sample."""
    check_destination(options.workdir, "folder", "--workdir")
    if options.xrootd is not None and not xrootd.is_remote(options.xrootd):
        raise InvalidValue(f"--xrootd {options.xrootd} is not a root:// URL",
                           hint="give the server, e.g. --xrootd root://127.0.0.1:1094")  # fmt: skip
    features = options.features or FLAT_FEATURES
    names = (*features, options.target, options.tree, *([options.weight] if options.weight else []))
    if not all(name.strip() for name in names) or options.weight == "":
        raise InvalidValue(
            "--features, --target, --tree or --weight names an empty branch or tree",
            hint="write the names, such as --features lep_pt,met",
        )
    if options.data:
        weight = options.weight
        data = DataSpec(options.data, options.tree, features, options.target, "", weight)
        data.dataset("train", weights=weight).close()  # opens each file: tree and branches
        return
    unknown = [f for f in (*features, options.weight or "weight") if f not in SAMPLE_BRANCHES]
    if unknown or options.target != SampleFiles.target or options.tree != SampleFiles.tree:
        raise InvalidValue(
            f"the generated sample has no branch or tree {', '.join(unknown) or options.tree}",
            hint=f"its tree is {SampleFiles.tree!r}, its target {SampleFiles.target!r}, its "
            f"branches {', '.join(SAMPLE_BRANCHES)}; or give your files with --data",
        )


def _input_files(options: DemoOptions, root: Path, out: Console) -> tuple[str, ...]:
    """The ROOT files to read: the user's, or the sample (written if absent), maybe via XRootD."""
    if options.data:
        out.print(f"{len(options.data)} file(s) given with --data")
        return options.data
    sample = _write_sample_with_progress(root / "data", options.events, options.files, out)
    paths = [p for pair in zip(sample.signal, sample.background, strict=True) for p in pair]
    size = sum(p.stat().st_size for p in paths)
    out.print(f"{len(paths)} ROOT files, {size / 1e6:.1f} MB in {root / 'data'}")
    if options.xrootd is None:
        return tuple(str(p) for p in paths)
    urls = tuple(f"{options.xrootd.rstrip('/')}//{str(p).lstrip('/')}" for p in paths)
    xrootd.configure_client()
    xrootd.stat(urls[0])  # the server must export the workdir: say so now, not in a trial
    out.print(f"reading them through {options.xrootd}")
    return urls


def _write_sample_with_progress(folder: Path, events: int, files: int, out: Console) -> SampleFiles:
    columns = [TextColumn("writing events"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn()]  # fmt: skip
    with Progress(*columns, console=out, transient=False) as bar:
        task = bar.add_task("sample", total=2 * files * max(1, events // (2 * files)))
        return write_sample(folder, events, files, progress=lambda n: bar.advance(task, n))


def _feature_stats(data: DataSpec, out: Console) -> tuple[FeatureStats, Events]:
    """Normalisation constants from the training split only, saved where every trial reads them;
    and the first training events read, kept for the overtraining check (no second read)."""
    kept: list[Batch] = []

    def keeping(batches: Iterable[Batch]) -> Iterator[Batch]:
        held = 0
        for batch in batches:
            if held < TRAIN_SAMPLE_EVENTS:
                kept.append(Batch(*(np.array(column) for column in batch)))  # the reader reuses
                held += len(batch.target)
            yield batch

    with out.status("planning the files and scanning the training split"):
        # reading the weights here checks their branch before any trial starts
        train = data.dataset("train", output="numpy", batch_size=8192, weights=data.weight)
        stats = FeatureStats.scan(keeping(train), train.columns, max_events=STATS_EVENTS)
    stats.save(data.stats_path)
    out.print(f"{train.stream.num_entries:,} events in {len(data.files)} files; "
              f"normalisation from {stats.count:,} training events")  # fmt: skip
    sample = Events(*(np.concatenate([getattr(b, name) for b in kept])[:TRAIN_SAMPLE_EVENTS]
                      for name in Events._fields))  # fmt: skip
    return stats, sample


def _scored(model: Classifier, normalise: Normaliser, events: Events) -> Scored:
    with torch.no_grad():
        scores = model(torch.from_numpy(normalise(events.features))).numpy().reshape(-1)
    return Scored(scores, events.target, events.weight)


def _search(data: DataSpec, options: DemoOptions, site: str, journal: Path) -> optuna.Study:
    """The study, its trials on ``options.workers`` dask workers; bad trials pruned early."""
    from batchml.hpo import run_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar tells it all
    name = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"  # a new study per run, never a resume
    return run_study(
        partial(objective, data=data, budget=options.budget), SEARCH_SPACE,
        n_trials=options.trials, site=site, max_jobs=options.workers,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2),
        study_name=name, storage=str(journal),
        checkpoint_dir=journal.parent / f"{name}.checkpoints", progress=True,
    )  # fmt: skip


def _data_lineage(files: tuple[str, ...]) -> list[dict[str, object]]:
    """Each input with its size: enough to tell later whether a file was replaced."""
    return [
        {"url": f, "size": xrootd.stat(f).size if xrootd.is_remote(f) else Path(f).stat().st_size}
        for f in files
    ]


def _package(registry: Registry, version: ModelVersion, root: Path, out: Console) -> Path:
    production = registry.get(f"{MODEL_NAME}@production")
    target = root / "packages" / f"{MODEL_NAME}-v{production.version}"
    folder = build(production, target, BuildOptions(output_labels=["signal"]),
                   progress=lambda step: out.print(f"  {step}"))  # fmt: skip
    out.print(f"packaged {production.uri} into {folder}")
    return folder


def _print_serving(out: Console, serving: Serving) -> None:
    out.print(f"one chunk through predict_many: {serving.chunk_events_per_s:,.0f} events/s, "
              f"package AUC {serving.auc:.4f}")  # fmt: skip
    for p in serving.points:
        out.print(f"{p.callers:3d} threads x predict(one event): {p.calls_per_s:,.0f} calls/s, "
                  f"p50 {p.p50_ms:.2f} ms, p99 {p.p99_ms:.2f} ms")  # fmt: skip


def _print_next(out: Console, registry: Path, package: Path, report: Path) -> None:
    out.print("\n[bold]next:[/bold]")
    for command in (
        f"open {report}",
        f"batchml registry --root {registry} list {MODEL_NAME}",
        f"batchml registry --root {registry} show {MODEL_NAME}@production",
        f"batchml package bench {package}",
        "batchml demo --site slurm-generic   # the same steps, trials as batch jobs",
        "batchml site show lxplus",
    ):
        out.print(f"  {command}")
