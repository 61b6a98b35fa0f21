"""What an analyst reads first about a classifier: weighted ROC, working points, overtraining.

Efficiencies are ratios of summed event weights (cross-section times
luminosity in the sample), as a selection's yields are: an unweighted curve
puts a working point in the wrong place wherever weights vary within a class.
The overtraining test compares the score distribution of training events with
that of held-out events, per class, with the two-sample Kolmogorov-Smirnov test
of scipy (``scipy.stats.ks_2samp``, two-sided). It is unweighted on purpose:
the demo trains without weights, so the question is whether the model scores
the events it fitted, each counted once, differently from events it never saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from batchml.errors import InvalidValue

WORKING_POINTS = (0.5, 0.7, 0.9)  # signal efficiencies of the working-point table
CLASSES = (("signal", 1), ("background", 0))


@dataclass(frozen=True)
class Roc:
    """A cut ``score >= thresholds[i]`` keeps ``eps_s[i]`` of signal, ``eps_b[i]`` of background.

    Thresholds fall from +inf (nothing kept) to the lowest score (everything kept).
    """

    thresholds: np.ndarray
    eps_s: np.ndarray
    eps_b: np.ndarray
    auc: float


def roc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> Roc:
    """The curve at every distinct score, weighted by ``weights`` (None: each event counts 1)."""
    order = np.argsort(-scores, kind="stable")
    ranked, truth = scores[order], labels[order] > 0.5
    weight = np.ones(len(order)) if weights is None else np.asarray(weights, np.float64)[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # the end of each tie
    signal = np.r_[0.0, np.cumsum(np.where(truth, weight, 0.0))[last]]
    background = np.r_[0.0, np.cumsum(np.where(truth, 0.0, weight))[last]]
    eps_s, eps_b = _fraction(signal), _fraction(background)
    thresholds = np.r_[np.inf, ranked[last]]
    return Roc(thresholds, eps_s, eps_b, float(np.trapezoid(eps_s, eps_b)))


def _fraction(cumulative: np.ndarray) -> np.ndarray:
    """Cumulative weight over the class total; all zero for a class with no weight."""
    total = cumulative[-1]
    return cumulative / total if total > 0 else np.zeros_like(cumulative)


@dataclass(frozen=True)
class WorkingPoint:
    """The tightest cut whose signal efficiency reaches ``target``, and what it keeps."""

    target: float
    threshold: float
    eps_s: float
    eps_b: float

    @property
    def rejection(self) -> float:
        """Background rejection 1/eps_B (infinite when no background passes)."""
        return 1.0 / self.eps_b if self.eps_b > 0 else float("inf")


def working_points(curve: Roc, targets: Sequence[float] = WORKING_POINTS) -> list[WorkingPoint]:
    """For each target signal efficiency, the tightest threshold that keeps at least that much."""
    points = []
    for target in targets:
        if not 0.0 < target <= 1.0:
            raise InvalidValue(f"working point at signal efficiency {target}",
                               hint="give signal efficiencies in (0, 1]")  # fmt: skip
        index = int(np.argmax(curve.eps_s >= target))  # eps_s ends at 1: always found
        columns = (curve.thresholds, curve.eps_s, curve.eps_b)
        points.append(WorkingPoint(target, *(float(c[index]) for c in columns)))
    return points


@dataclass(frozen=True)
class KsTest:
    """One class's training and held-out scores compared (scipy's two-sided two-sample KS)."""

    name: str
    statistic: float
    p_value: float
    train_events: int
    test_events: int


def overtraining_tests(
    train_scores: np.ndarray,
    train_labels: np.ndarray,
    test_scores: np.ndarray,
    test_labels: np.ndarray,
) -> list[KsTest]:
    """A KS test per class (signal first); a class missing on either side is left out."""
    from scipy.stats import ks_2samp  # only the demo needs scipy: import it here

    tests = []
    for name, label in CLASSES:
        train = train_scores[(train_labels > 0.5) == bool(label)]
        test = test_scores[(test_labels > 0.5) == bool(label)]
        if len(train) and len(test):
            result = ks_2samp(train, test)
            tests.append(KsTest(name, float(result.statistic), float(result.pvalue),
                                len(train), len(test)))  # fmt: skip
    return tests


class Scored(NamedTuple):
    """Events' classifier scores, their labels (1 signal) and their weights."""

    scores: np.ndarray
    labels: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True)
class Evaluation:
    """The best model on the held-out events, and on a sample of training events."""

    test: Scored
    train: Scored
    weighted: bool  # efficiencies weighted by the test events' weights
    curve: Roc
    auc: float  # unweighted: the registry's test_auc, what the training optimised
    points: list[WorkingPoint]
    ks: list[KsTest]


def evaluate(test: Scored, train: Scored, weighted: bool) -> Evaluation:
    """Every number of the report's performance and overtraining sections."""
    curve = roc(test.scores, test.labels, test.weights if weighted else None)
    return Evaluation(
        test, train, weighted, curve,
        auc=roc(test.scores, test.labels).auc, points=working_points(curve),
        ks=overtraining_tests(train.scores, train.labels, test.scores, test.labels),
    )  # fmt: skip
