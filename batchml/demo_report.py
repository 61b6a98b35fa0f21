"""The demo's own figures for ``report.html``: the ROC curve and the package's latency.

The page itself (and the study's plots) is batchml.hpo.report's; the demo adds
what only it knows: the held-out evaluation and the package it built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from batchml.hpo.report import Figure, png, pyplot


def roc_figure(fpr: np.ndarray, tpr: np.ndarray, auc: float, events: int) -> Figure:
    """The ROC curve of the best model on the held-out events, with chance for reference."""
    figure, axis = pyplot().subplots(figsize=(5.5, 5))
    axis.plot(fpr, tpr, label=f"best model, AUC {auc:.4f}")
    axis.plot([0, 1], [0, 1], ls="--", color="grey", label="chance, AUC 0.5")
    axis.set(xlabel="background efficiency (false-positive rate)",
             ylabel="signal efficiency (true-positive rate)", xlim=(0, 1), ylim=(0, 1))  # fmt: skip
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    return Figure(f"ROC curve on {events:,} held-out events", png(figure))


def package_figure(package: Path) -> Figure:
    """The packager's latency and throughput per batch size (benchmark.png in the package)."""
    from batchml.package.bench import PLOT_NAME

    return Figure(
        "ONNX Runtime latency and throughput per batch size (the package's benchmark)",
        (package / PLOT_NAME).read_bytes(),
    )
