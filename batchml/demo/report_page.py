"""The demo's ``report.html``, ordered as an analyst reads it.

First what went in (files, features, events per class, weights), then how well
the best model separates signal from background on events nobody tuned on
(background rejection against signal efficiency, working points), then whether
it learnt its training events by heart (the overtraining check), then how it
was found (the study), how fast the package serves, and what the run cost in
time. The page itself is batchml.hpo.page's; the study's plots hpo.report's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

from batchml.data import FeatureStats
from batchml.demo.evaluation import CLASSES, Evaluation, Roc, Scored, WorkingPoint
from batchml.demo.serving import Serving
from batchml.demo.training import DataSpec, EventCounts
from batchml.hpo.page import Block, Cell, Figure, Report, Section, TableData, png, pyplot
from batchml.hpo.report import parameters_table, reading_blocks, study_figures, trial_counts
from batchml.hpo.timeline import timeline_figure
from batchml.registry import ModelVersion

SCORE_BINS = 40
WORKING_POINT_HEADER = ("ε_S asked", "threshold", "ε_S", "ε_B", "background rejection 1/ε_B")
KS_HEADER = ("class", "training events", "held-out events", "KS statistic D", "p-value")
COLOURS = {"signal": "tab:blue", "background": "tab:red"}


@dataclass(frozen=True)
class DemoRun:
    """What the demo's stages produced, for the page."""

    title: str
    data: DataSpec
    stats: FeatureStats
    counts: EventCounts
    evaluation: Evaluation
    study: optuna.Study
    version: ModelVersion
    serving: Serving
    package: Path


def demo_report(run: DemoRun) -> Report:
    """The page but for the run's times and products (``add_run``: the report's own time)."""
    report = Report(run.title, facts=_facts(run))
    report.sections = [
        Section("Inputs", _inputs(run)),
        Section("Performance on held-out events", _performance(run.evaluation)),
        Section("Overtraining check", _overtraining(run.evaluation)),
        Section("Hyper-parameter search", _search(run)),
        Section("Serving the package", _serving(run.serving, run.package)),
    ]
    return report


def _facts(run: DemoRun) -> list[tuple[str, Cell]]:
    evaluation, best = run.evaluation, run.study.best_trial
    middle = next(p for p in evaluation.points if p.target == 0.7)
    return [
        ("model", f"{run.version.uri} ({run.version.name}@production)"),
        ("held-out AUC", f"{evaluation.curve.auc:.4f} ({_weighting(evaluation, run.data)}); "
                         f"unweighted {evaluation.auc:.4f}"),
        ("background rejection at ε_S = 0.7", _rejection(middle)),
        ("package AUC (ONNX Runtime, unweighted)", f"{run.serving.auc:.4f}"),
        ("study", f"{run.study.study_name}: {trial_counts(run.study)}"),
        ("best trial", f"{best.number}, validation loss {best.value:.4f}"),
    ]


def _weighting(evaluation: Evaluation, data: DataSpec) -> str:
    return f"weighted by branch {data.weight!r}" if evaluation.weighted else "unweighted"


def _inputs(run: DemoRun) -> list[Block]:
    data, stats = run.data, run.stats
    weights = (
        f"branch {data.weight!r}: the held-out ROC, AUC and working points are weighted by it; "
        "training, score distributions and the KS test count each event once"
        if data.weight else "none: every event counts once"
    )  # fmt: skip
    setup = TableData("Setup", ("input", "value"), [
        ("tree", data.tree), ("target", f"{data.target} (1 signal, 0 background)"),
        ("features", f"{len(data.features)}: {', '.join(data.features)}"),
        ("event weights", weights),
    ])  # fmt: skip
    return [setup, _events(run.counts), _files(run.version),
            _features(stats, f"training events ({stats.count:,} read)")]  # fmt: skip


def _events(counts: EventCounts) -> TableData:
    parts = (counts.training, counts.validation, counts.test)
    rows = [(name, *(f"{part[i]:,}" for part in parts)) for i, (name, _) in enumerate(CLASSES)]
    rows.append(("total", *(f"{sum(part):,}" for part in parts)))
    return TableData(
        "Events per class (the split is by hash of file and entry; validation and held-out "
        "are the even and odd entries of the validation side)",
        ("class", "training", "validation (trials' loss)", "held-out (this page)"), rows,
    )  # fmt: skip


def _files(version: ModelVersion) -> TableData:
    rows = [(_path_or_url(str(f["url"])), f"{int(f['size']) / 1e6:.1f}")
            for f in version.lineage.get("data", [])]  # fmt: skip
    return TableData("Input files", ("file", "MB"), rows)


def _path_or_url(where: str) -> Cell:
    return where if "://" in where else Path(where)


def _features(stats: FeatureStats, source: str) -> TableData:
    rows = [
        (name, *(f"{v:.4g}" for v in (stats.mean[i], stats.std[i], stats.min[i], stats.max[i])))
        for i, name in enumerate(stats.columns)
    ]
    return TableData(f"Features and their normalisation, from {source}",
                     ("feature", "mean", "std", "min", "max"), rows)  # fmt: skip


def _performance(evaluation: Evaluation) -> list[Block]:
    events = len(evaluation.test.scores)
    how = "weighted by the event weights" if evaluation.weighted else "unweighted"
    rows = [(f"{p.target:.1f}", f"{p.threshold:.4f}", f"{p.eps_s:.4f}", f"{p.eps_b:.4g}",
             _rejection(p)) for p in evaluation.points]  # fmt: skip
    return [
        rejection_figure(evaluation.curve, evaluation.points),
        f"{events:,} held-out events, efficiencies {how}. A working point selects score >= "
        "threshold: the tightest threshold whose signal efficiency reaches the one asked for.",
        TableData("Working points", WORKING_POINT_HEADER, rows),
    ]


def _rejection(point: WorkingPoint) -> str:
    return f"{point.rejection:,.1f}" if np.isfinite(point.rejection) else "∞ (no background left)"


def rejection_figure(curve: Roc, points: list[WorkingPoint]) -> Figure:
    """Background rejection 1/eps_B (log) against signal efficiency, the working points marked."""
    figure, axis = pyplot().subplots(figsize=(7, 5))
    kept = curve.eps_b > 0
    axis.plot(curve.eps_s[kept], 1 / curve.eps_b[kept], label=f"best model, AUC {curve.auc:.4f}")
    chance = np.linspace(0.01, 1, 100)
    axis.plot(chance, 1 / chance, ls="--", color="grey", label="random selection")
    for point in points:
        if np.isfinite(point.rejection):
            axis.plot(point.eps_s, point.rejection, "o", color="black", ms=5)
            axis.annotate(f"ε_S {point.target:.1f}: 1/ε_B = {point.rejection:,.0f}",
                          (point.eps_s, point.rejection), textcoords="offset points",
                          xytext=(6, 6), fontsize=8)  # fmt: skip
    axis.set(xlabel="signal efficiency ε_S", ylabel="background rejection 1/ε_B", yscale="log",
             xlim=(0, 1))  # fmt: skip
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="upper right")
    return Figure("Background rejection against signal efficiency on the held-out events "
                  "(log scale); dots: the working points", png(figure))  # fmt: skip


def _overtraining(evaluation: Evaluation) -> list[Block]:
    train, test = evaluation.train, evaluation.test
    rows = [(k.name, f"{k.train_events:,}", f"{k.test_events:,}", f"{k.statistic:.4f}",
             f"{k.p_value:.3g}") for k in evaluation.ks]  # fmt: skip
    return [
        overtraining_figure(train, test, {k.name: k.p_value for k in evaluation.ks}),
        f"Training: the first {len(train.scores):,} events of the training split read for the "
        f"normalisation (no second read); held-out: all {len(test.scores):,}. "
        "Kolmogorov-Smirnov test per class: scipy.stats.ks_2samp, two-sided, unweighted "
        "(training was unweighted). A small p-value (below 0.05, say) in both classes points "
        "to overtraining; with many events the test also flags differences too small to "
        "matter, so read it with the plot.",
        TableData("Kolmogorov-Smirnov test, training vs held-out scores", KS_HEADER, rows),
    ]


def overtraining_figure(train: Scored, test: Scored, p_values: dict[str, float]) -> Figure:
    """Normalised score distributions per class: training filled, held-out as points with errors."""
    figure, axis = pyplot().subplots(figsize=(8, 5))
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    centres, width = (edges[1:] + edges[:-1]) / 2, edges[1] - edges[0]
    for name, label in CLASSES:
        colour = COLOURS[name]
        mine = train.scores[(train.labels > 0.5) == bool(label)]
        axis.hist(mine, edges, density=True, histtype="stepfilled", alpha=0.3, color=colour,
                  label=f"{name}, training")  # fmt: skip
        held = test.scores[(test.labels > 0.5) == bool(label)]
        counts, _ = np.histogram(held, edges)
        scale = 1.0 / max(len(held), 1) / width
        shown = counts > 0
        p = f" (KS p = {p_values[name]:.3g})" if name in p_values else ""
        axis.errorbar(centres[shown], counts[shown] * scale, yerr=np.sqrt(counts[shown]) * scale,
                      fmt="o", ms=3, color=colour, label=f"{name}, held-out{p}")  # fmt: skip
    axis.set(xlabel="classifier score", ylabel="normalised events (1/N dN/dscore)",
             yscale="log", xlim=(0, 1))  # fmt: skip
    bottom, top = axis.get_ylim()
    axis.set_ylim(bottom, top * 10)  # room for the legend above the peaks
    axis.legend(loc="upper center", fontsize=9, ncol=2)
    return Figure("Score distributions, training (filled) vs held-out (points, statistical "
                  "errors), each normalised to unit area", png(figure))  # fmt: skip


def _search(run: DemoRun) -> list[Block]:
    best = run.study.best_trial
    caption = f"Best trial ({best.number}): its parameters"
    blocks: list[Block] = [parameters_table(caption, best.params, best.distributions)]
    blocks += study_figures(run.study)
    timeline = timeline_figure(run.study)
    return blocks + ([timeline] if timeline else []) + reading_blocks(run.study)


def _serving(serving: Serving, package: Path) -> list[Block]:
    from batchml.package.bench import PLOT_NAME

    rows = [(str(p.callers), f"{p.calls_per_s:,.0f}", f"{p.p50_ms:.2f}", f"{p.p99_ms:.2f}")
            for p in serving.points]  # fmt: skip
    caption = (
        "Batched inference (BatchedSession, 1 intra-op thread); one chunk through "
        f"predict_many: {serving.chunk_events_per_s:,.0f} events/s"
    )
    plot = (package / PLOT_NAME).read_bytes()
    return [
        TableData(caption, ("threads calling predict", "calls/s", "p50 ms", "p99 ms"), rows),
        Figure("ONNX Runtime latency and throughput per batch size (the package's benchmark)",
               plot),
    ]


def add_run(report: Report, timings: dict[str, float], products: dict[str, Path]) -> None:
    """The total time at the top; each stage's time and every product's path at the end."""
    total = sum(timings.values())
    report.facts.append(("total time", f"{total:.1f} s (each stage's under Run)"))
    stages = [*((k, f"{v:.1f}") for k, v in timings.items()), ("total", f"{total:.1f}")]
    report.sections.append(Section("Run", [
        TableData("Stage times (the report's: until this page was written)",
                  ("stage", "seconds"), stages),
        TableData("Produced", ("what", "path"), list(products.items())),
    ]))  # fmt: skip
