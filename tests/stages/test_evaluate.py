import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import EvaluateParams
from pipeline.core.metrics import (
    bootstrap_intervals,
    classification_metrics,
    expected_calibration_error,
    reliability_bins,
    roc_points,
    score,
    thin,
)
from pipeline.core.paths import CURVES


def test_metrics_match_a_hand_computed_confusion_matrix():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.3, 0.2, 0.6, 0.1, 0.4, 0.7])
    m = classification_metrics(y, p, threshold=0.5)
    assert m["confusion_matrix"] == {"tp": 3, "fn": 1, "fp": 1, "tn": 3}
    assert m["accuracy"] == 0.75
    assert m["precision"] == 0.75 and m["recall"] == 0.75 and m["f1"] == 0.75
    assert m["roc_auc"] == pytest.approx(14 / 16, abs=1e-4)  # 14 of 16 pos/neg pairs ranked right
    squared = [0.01, 0.04, 0.49, 0.04, 0.36, 0.01, 0.16, 0.09]
    assert m["brier"] == pytest.approx(sum(squared) / 8, abs=1e-4)


def test_threshold_moves_the_decision():
    y = np.array([1, 0])
    p = np.array([0.6, 0.4])
    assert classification_metrics(y, p, 0.5)["accuracy"] == 1.0
    assert classification_metrics(y, p, 0.7)["accuracy"] == 0.5


def test_confident_mistakes_cost_more_log_loss():
    y = np.array([1, 0])
    mild = classification_metrics(y, np.array([0.4, 0.6]))["log_loss"]
    confident = classification_metrics(y, np.array([0.01, 0.99]))["log_loss"]
    assert confident > mild


def noisy_predictions(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """About 80% right, probabilities spread over (0, 1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    right = rng.random(n) < 0.8
    confidence = rng.uniform(0.5, 1.0, n)
    p = np.where(right == (y == 1), confidence, 1 - confidence)
    return y, p


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_reviews():
    y, p = noisy_predictions(400)
    small = bootstrap_intervals(y, p, 0.5, 1000, 0.95, seed=1)
    large = bootstrap_intervals(np.tile(y, 25), np.tile(p, 25), 0.5, 1000, 0.95, seed=1)
    point = classification_metrics(y, p)
    for metric in ("accuracy", "f1"):
        for ci in (small, large):
            assert ci[f"{metric}_ci_low"] <= point[metric] <= ci[f"{metric}_ci_high"]
        small_width = small[f"{metric}_ci_high"] - small[f"{metric}_ci_low"]
        large_width = large[f"{metric}_ci_high"] - large[f"{metric}_ci_low"]
        assert large_width < small_width / 3  # 25x the reviews: about 1/5 the width


def test_bootstrap_is_reproducible_with_its_seed():
    y, p = noisy_predictions(300)
    first = bootstrap_intervals(y, p, 0.5, 500, 0.9, seed=7)
    assert bootstrap_intervals(y, p, 0.5, 500, 0.9, seed=7) == first
    assert bootstrap_intervals(y, p, 0.5, 500, 0.9, seed=8) != first


def test_bootstrap_matches_resampling_the_reviews_themselves():
    y, p = noisy_predictions(500, seed=3)
    fast = bootstrap_intervals(y, p, 0.5, 4000, 0.95, seed=0)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(y), size=(4000, len(y)))
    accuracies = ((p[rows] >= 0.5) == y[rows]).mean(axis=1)
    low, high = np.quantile(accuracies, [0.025, 0.975])
    assert fast["accuracy_ci_low"] == pytest.approx(low, abs=0.006)
    assert fast["accuracy_ci_high"] == pytest.approx(high, abs=0.006)


def test_reliability_bins_by_hand():
    y = np.array([0, 1, 1, 1, 0])
    p = np.array([0.05, 0.15, 0.95, 0.85, 1.0])
    bins = reliability_bins(y, p, n_bins=2)
    assert bins.bin_low.tolist() == [0.0, 0.5] and bins.bin_high.tolist() == [0.5, 1.0]
    assert bins.mean_predicted.tolist() == pytest.approx([0.1, 0.9333], abs=1e-4)
    assert bins.fraction_positive.tolist() == pytest.approx([0.5, 2 / 3], abs=1e-4)
    assert bins.reviews.tolist() == [2, 3]
    # |0.1 - 0.5| * 2 + |0.9333 - 0.6667| * 3, over 5 reviews
    assert expected_calibration_error(bins) == pytest.approx((0.8 + 0.8) / 5, abs=1e-3)


def test_empty_bins_are_left_out():
    bins = reliability_bins(np.array([0, 1]), np.array([0.01, 0.99]), n_bins=10)
    assert bins.bin_low.tolist() == [0.0, 0.9]


def test_curves_are_thinned_but_keep_both_ends():
    y, p = noisy_predictions(5000)
    roc = roc_points(y, p, max_points=50)
    assert len(roc) <= 50
    assert roc.iloc[0].tolist() == [0.0, 0.0] and roc.iloc[-1].tolist() == [1.0, 1.0]
    assert roc.fpr.is_monotonic_increasing and roc.tpr.is_monotonic_increasing
    frame = pd.DataFrame({"a": range(10)})
    assert thin(frame, 20).a.tolist() == list(range(10))
    assert thin(frame, 4).a.tolist() == [0, 3, 6, 9]


def test_score_adds_intervals_and_calibration_and_returns_every_curve():
    y, p = noisy_predictions(200)
    scores, curves = score(y, p, EvaluateParams(n_bootstrap=200, confidence=0.9), seed=0)
    assert set(curves) == set(CURVES)
    assert scores["accuracy_ci_low"] <= scores["accuracy"] <= scores["accuracy_ci_high"]
    assert scores["confidence"] == 0.9 and 0 <= scores["ece"] <= 1
    assert curves["calibration"].reviews.sum() == 200
