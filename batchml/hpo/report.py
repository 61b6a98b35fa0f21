"""The hyper-parameter study as one self-contained HTML page (`batchml hpo report`).

Every plot is a matplotlib PNG embedded as a data URI, so the page can be
copied, mailed or opened from EOS without the files beside it. The study's
plots come from Optuna's matplotlib backend; a plot that cannot be drawn (too
few finished trials for importances) is left out with the reason, never
failing the run. batchml adds what Optuna does not draw: how long each trial
took and which GPU slot it held, over time (is the cluster busy? did a slot
sit idle?). Written atomically: a half-written report is never seen.
"""

from __future__ import annotations

import base64
import html
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import optuna

from batchml.atomic import write_atomic
from batchml.hpo.outcomes import DEVICES_ATTR, HOST_ATTR, STARTED_ATTR


class Figure(NamedTuple):
    caption: str
    png: bytes


class TableData(NamedTuple):
    caption: str
    header: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass
class Report:
    """What the page shows, in order: headline facts, tables, figures, produced paths, notes."""

    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[TableData] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    products: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def html(self) -> str:
        e = html.escape
        parts = [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{e(self.title)}</title>",
            f"<style>{_STYLE}</style></head><body><h1>{e(self.title)}</h1>",
            _table(TableData("Summary", ("", ""), self.facts)),
            *(_table(t) for t in self.tables),
        ]
        for figure in self.figures:
            data = base64.b64encode(figure.png).decode()
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}' alt='{e(figure.caption)}'>"
                f"<figcaption>{e(figure.caption)}</figcaption></figure>"
            )
        rows = [(name, f"<code>{e(str(path))}</code>") for name, path in self.products.items()]
        parts.append(_table(TableData("Produced", ("", "path"), rows), escape_cells=False))
        if self.notes:
            parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in self.notes))
            parts.append("</ul>")
        parts.append("</body></html>\n")
        return "\n".join(parts)

    def write(self, path: Path) -> None:
        write_atomic(path, self.html().encode())


_STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .6em}"
    "img{max-width:100%}figure{margin:1.5em 0}figcaption{color:#555}"
)


def _table(table: TableData, escape_cells: bool = True) -> str:
    def cell(text: str) -> str:
        return html.escape(text) if escape_cells else text

    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in table.rows)
    return f"<h2>{html.escape(table.caption)}</h2><table><tr>{head}</tr>{body}</table>"


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on batch nodes and in CI
    import matplotlib.pyplot as plt

    return plt


def png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    pyplot().close(figure)
    return buffer.getvalue()


STUDY_PLOTS: tuple[tuple[str, str], ...] = (
    ("plot_optimization_history", "Optimisation history: the objective of each trial"),
    ("plot_intermediate_values", "Reported values per step; pruned trials stop early"),
    ("plot_param_importances", "Hyper-parameter importances (fANOVA)"),
    ("plot_parallel_coordinate", "Parallel coordinates of the finished trials"),
)


def study_figures(study: optuna.Study) -> tuple[list[Figure], list[str]]:
    """The study's plots, and a note for each one that could not be drawn."""
    from optuna.visualization import matplotlib as plots

    pyplot()
    figures, notes = [], []
    for name, caption in STUDY_PLOTS:
        draw: Callable[[optuna.Study], Any] = getattr(plots, name)
        try:
            with warnings.catch_warnings():  # "experimental" backend; flat axes of few trials
                warnings.simplefilter("ignore")
                axes = draw(study)
        except Exception as exc:  # e.g. importances need two finished trials
            notes.append(f"{caption}: not drawn ({type(exc).__name__}: {exc})")
            continue
        figure = np.atleast_1d(axes).flat[0].figure
        figure.set_size_inches(8, 4.5)
        figures.append(Figure(caption, png(figure)))
    return figures, notes


def timeline_figure(study: optuna.Study) -> Figure | None:
    """One bar per trial on the row of the host and GPU slot it held, coloured by outcome."""
    trials = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    if not trials:
        return None
    plt = pyplot()
    spans = {t.number: _span(t) for t in trials}
    start = min(begin for begin, _ in spans.values())
    rows = sorted({_slot(t) for t in trials})
    colours = {"COMPLETE": "tab:green", "PRUNED": "tab:orange", "FAIL": "tab:red"}
    figure, axes = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.5))
    for trial in trials:
        begin, end = spans[trial.number]
        axes.barh(rows.index(_slot(trial)), end - begin, left=begin - start, height=0.8,
                  color=colours.get(trial.state.name, "tab:gray"), edgecolor="white")  # fmt: skip
    axes.set_yticks(range(len(rows)), rows)
    axes.set_xlabel("seconds since the first trial started")
    return Figure("GPU slot timeline: green complete, orange pruned, red failed", png(figure))


def duration_figure(study: optuna.Study) -> Figure | None:
    """Seconds per trial against trial number: slow trials and stragglers at a glance."""
    trials = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    if not trials:
        return None
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(8, 3.5))
    seconds = [t.duration.total_seconds() for t in trials if t.duration]
    axes.scatter([t.number for t in trials], seconds, s=12)
    axes.set_xlabel("trial")
    axes.set_ylabel("seconds")
    return Figure("Duration of each trial", png(figure))


def _span(trial: optuna.trial.FrozenTrial) -> tuple[float, float]:
    """When the trial held its slot (epoch seconds): from taking it on the worker to the end."""
    assert trial.datetime_start is not None and trial.datetime_complete is not None
    end = trial.datetime_complete.timestamp()
    return float(trial.user_attrs.get(STARTED_ATTR, trial.datetime_start.timestamp())), end


def _slot(trial: optuna.trial.FrozenTrial) -> str:
    host = trial.user_attrs.get(HOST_ATTR, "?")
    devices = trial.user_attrs.get(DEVICES_ATTR) or "cpu"
    return f"{host} {devices}"


def study_report(study: optuna.Study) -> Report:
    """The page `batchml hpo report` writes: counts, best trial, every plot."""
    report = Report(f"batchml study {study.study_name}")
    states = [t.state.name.lower() for t in study.trials]
    report.facts = [(state, str(states.count(state))) for state in sorted(set(states))]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete and len(study.directions) == 1:
        best = study.best_trial
        report.facts.append(("best", f"trial {best.number}: {best.value:.6g}"))
        rows = [(name, str(value)) for name, value in best.params.items()]
        report.tables.append(TableData("Best parameters", ("parameter", "value"), rows))
    figures, report.notes = study_figures(study)
    report.figures = figures + [f for f in (timeline_figure(study), duration_figure(study)) if f]
    return report
