"""The report's physics numbers against brute force on known arrays: ROC, working points, KS."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp

from batchml.demo.evaluation import overtraining_tests, roc, working_points
from batchml.errors import InvalidValue


def _sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores with ties (two decimals), labels, and weights as the demo's sample has them."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.5).astype(np.float32)
    scores = np.round(np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1), 2).astype(np.float32)
    weights = np.where(labels > 0.5, 0.05, 1.0) * rng.uniform(0.8, 1.2, n)
    return scores, labels, weights


def _efficiency(scores: np.ndarray, keep: np.ndarray, weights: np.ndarray, cut: float) -> float:
    return float(weights[keep & (scores >= cut)].sum() / weights[keep].sum())


def test_weighted_roc_is_the_weighted_fraction_passing_each_cut() -> None:
    scores, labels, weights = _sample(500, seed=1)
    curve = roc(scores, labels, weights)
    signal = labels > 0.5
    assert curve.thresholds[0] == np.inf and (curve.eps_s[0], curve.eps_b[0]) == (0, 0)
    assert len(curve.thresholds) == len(np.unique(scores)) + 1  # one point per distinct score
    for cut, eps_s, eps_b in zip(curve.thresholds[1:], curve.eps_s[1:], curve.eps_b[1:],
                                 strict=True):  # fmt: skip
        assert eps_s == pytest.approx(_efficiency(scores, signal, weights, cut), abs=1e-12)
        assert eps_b == pytest.approx(_efficiency(scores, ~signal, weights, cut), abs=1e-12)


def test_weighted_auc_is_the_weighted_chance_that_signal_scores_higher() -> None:
    scores, labels, weights = _sample(400, seed=2)
    signal = labels > 0.5
    pair = np.outer(weights[signal], weights[~signal])
    higher = scores[signal][:, None] > scores[~signal][None, :]
    tied = scores[signal][:, None] == scores[~signal][None, :]
    expected = (pair * (higher + 0.5 * tied)).sum() / pair.sum()  # ties count half
    assert roc(scores, labels, weights).auc == pytest.approx(expected, abs=1e-12)
    unweighted = (higher + 0.5 * tied).mean()
    assert roc(scores, labels).auc == pytest.approx(unweighted, abs=1e-12)
    assert abs(expected - unweighted) > 1e-4  # the weights do change it


def test_working_points_are_the_tightest_cuts_that_reach_each_signal_efficiency() -> None:
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    labels = np.array([1, 1, 0, 1, 1, 0, 1, 0, 0, 0])
    weights = np.array([1, 1, 1, 1, 2, 1, 1, 2, 1, 4], dtype=float)  # signal 6, background 9
    points = working_points(roc(scores, labels, weights))
    # 0.5 of signal (3 of 6): score >= 0.7 keeps 1+1+1 signal, 1 of 9 background
    # 0.7 (4.2 of 6): score >= 0.6 keeps 5; 0.9 (5.4 of 6): score >= 0.4 keeps all 6
    got = [x for p in points for x in (p.target, p.threshold, p.eps_s, p.eps_b)]
    assert got == pytest.approx([0.5, 0.7, 3 / 6, 1 / 9, 0.7, 0.6, 5 / 6, 1 / 9,
                                 0.9, 0.4, 1.0, 2 / 9])  # fmt: skip
    assert [p.rejection for p in points] == pytest.approx([9, 9, 4.5])


def test_working_points_agree_with_brute_force_on_a_sample() -> None:
    scores, labels, weights = _sample(2000, seed=3)
    signal = labels > 0.5
    cuts = np.unique(scores)
    for point in working_points(roc(scores, labels, weights), (0.5, 0.7, 0.9)):
        passing = [c for c in cuts if _efficiency(scores, signal, weights, c) >= point.target]
        tightest = max(passing)
        assert point.threshold == tightest
        assert point.eps_s == pytest.approx(_efficiency(scores, signal, weights, tightest))
        assert point.eps_b == pytest.approx(_efficiency(scores, ~signal, weights, tightest))


def test_no_background_left_means_infinite_rejection_and_bad_targets_are_refused() -> None:
    curve = roc(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0]))
    (point,) = working_points(curve, (0.5,))
    assert (point.threshold, point.eps_s, point.eps_b) == (0.9, 0.5, 0.0)
    assert point.rejection == float("inf")
    with pytest.raises(InvalidValue, match=r"signal efficiency 1\.5"):
        working_points(curve, (1.5,))


def test_ks_tests_are_scipys_two_sample_test_per_class() -> None:
    rng = np.random.default_rng(4)
    train_labels, test_labels = rng.random(3000) < 0.5, rng.random(1000) < 0.5
    train = rng.beta(2 + 3 * train_labels, 5 - 3 * train_labels)
    test = rng.beta(2 + 3 * test_labels, 5 - 3 * test_labels)
    test[test_labels] = test[test_labels] ** 1.3  # signal held out scores lower: overtrained
    signal, background = overtraining_tests(train, train_labels, test, test_labels)
    for result, keep_train, keep_test in ((signal, train_labels, test_labels),
                                          (background, ~train_labels, ~test_labels)):  # fmt: skip
        a, b = train[keep_train], test[keep_test]
        reference = ks_2samp(a, b)
        assert (result.statistic, result.p_value) == (reference.statistic, reference.pvalue)
        assert (result.train_events, result.test_events) == (len(a), len(b))
        grid = np.sort(np.r_[a, b])  # the statistic by hand: the largest gap of the two ECDFs
        gap = np.abs(np.searchsorted(np.sort(a), grid, "right") / len(a)
                     - np.searchsorted(np.sort(b), grid, "right") / len(b))  # fmt: skip
        assert result.statistic == pytest.approx(gap.max(), abs=1e-12)
    assert (signal.name, background.name) == ("signal", "background")
    assert signal.p_value < 1e-4 < background.p_value  # the shifted class is the one flagged
