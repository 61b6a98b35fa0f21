"""``report.html`` of `batchml demo`: one self-contained page a user opens after the run.

Every plot is a matplotlib PNG embedded as a data URI, so the page can be
copied, mailed or opened from EOS without the files beside it. The study's
plots come from Optuna's matplotlib backend; a plot that cannot be drawn (too
few finished trials for importances) is left out with the reason, never
failing the run. Written atomically: a half-written report is never seen.
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


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on batch nodes and in CI
    import matplotlib.pyplot as plt

    return plt


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    _pyplot().close(figure)
    return buffer.getvalue()


STUDY_PLOTS: tuple[tuple[str, str], ...] = (
    ("plot_optimization_history", "Optimisation history: validation loss of each trial"),
    ("plot_intermediate_values", "Validation loss per epoch; pruned trials stop early"),
    ("plot_param_importances", "Hyper-parameter importances (fANOVA)"),
    ("plot_parallel_coordinate", "Parallel coordinates of the finished trials"),
)


def study_figures(study: optuna.Study) -> tuple[list[Figure], list[str]]:
    """The study's plots, and a note for each one that could not be drawn."""
    from optuna.visualization import matplotlib as plots

    _pyplot()
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
        figures.append(Figure(caption, _png(figure)))
    return figures, notes


def roc_figure(fpr: np.ndarray, tpr: np.ndarray, auc: float, events: int) -> Figure:
    """The ROC curve of the best model on the held-out events, with chance for reference."""
    figure, axis = _pyplot().subplots(figsize=(5.5, 5))
    axis.plot(fpr, tpr, label=f"best model, AUC {auc:.4f}")
    axis.plot([0, 1], [0, 1], ls="--", color="grey", label="chance, AUC 0.5")
    axis.set(xlabel="background efficiency (false-positive rate)",
             ylabel="signal efficiency (true-positive rate)", xlim=(0, 1), ylim=(0, 1))  # fmt: skip
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    return Figure(f"ROC curve on {events:,} held-out events", _png(figure))


def package_figure(package: Path) -> Figure:
    """The packager's latency and throughput per batch size (benchmark.png in the package)."""
    from batchml.package.bench import PLOT_NAME

    return Figure(
        "ONNX Runtime latency and throughput per batch size (the package's benchmark)",
        (package / PLOT_NAME).read_bytes(),
    )
