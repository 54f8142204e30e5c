"""Scoring a model's test probabilities: metrics with bootstrap intervals, calibration and the
curves. evaluate and baseline use the same functions, so every model is measured the same way."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from sklearn import metrics as skm

from pipeline.core.config import EvaluateParams
from pipeline.core.io import atomic_path
from pipeline.core.paths import CURVES_DIR, PREDICTIONS_DIR

MAX_CURVE_POINTS = 400  # enough for a smooth line; the full ROC of 25k reviews has thousands


def classification_metrics(y_true: np.ndarray, probability: np.ndarray,
                           threshold: float = 0.5) -> dict:
    predicted = (probability >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y_true, predicted, labels=[0, 1]).ravel()
    return {
        "accuracy": round(float(skm.accuracy_score(y_true, predicted)), 4),
        "precision": round(float(skm.precision_score(y_true, predicted, zero_division=0)), 4),
        "recall": round(float(skm.recall_score(y_true, predicted, zero_division=0)), 4),
        "f1": round(float(skm.f1_score(y_true, predicted, zero_division=0)), 4),
        "roc_auc": round(float(skm.roc_auc_score(y_true, probability)), 4),
        "log_loss": round(float(skm.log_loss(y_true, probability, labels=[0, 1])), 4),
        "brier": round(float(skm.brier_score_loss(y_true, probability)), 4),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def bootstrap_intervals(y_true: np.ndarray, probability: np.ndarray, threshold: float,
                        n_bootstrap: int, confidence: float, seed: int) -> dict[str, float]:
    """Percentile bootstrap confidence intervals of accuracy and F1 over the test reviews.

    Accuracy and F1 depend only on the confusion matrix, and resampling n reviews with
    replacement only changes how many land in each of its four cells: that count is one
    multinomial draw with the observed cell shares. Drawing it directly is exactly the
    row bootstrap, at the cost of four numbers per resample instead of n.
    """
    predicted = probability >= threshold
    positive = np.asarray(y_true) == 1
    cells = np.array([(~positive & ~predicted).sum(), (~positive & predicted).sum(),
                      (positive & ~predicted).sum(), (positive & predicted).sum()])
    n = cells.sum()
    draws = np.random.default_rng(seed).multinomial(n, cells / n, size=n_bootstrap)
    tn, fp, fn, tp = draws.T
    accuracy = (tn + tp) / n
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros(n_bootstrap), where=tp > 0)
    tail = (1 - confidence) / 2
    intervals = {}
    for name, values in (("accuracy", accuracy), ("f1", f1)):
        low, high = np.quantile(values, [tail, 1 - tail])
        intervals[f"{name}_ci_low"] = round(float(low), 4)
        intervals[f"{name}_ci_high"] = round(float(high), 4)
    return intervals


def reliability_bins(y_true: np.ndarray, probability: np.ndarray, n_bins: int) -> pd.DataFrame:
    """Equal-width probability bins: mean predicted probability vs observed share of positives.

    Empty bins are left out. A calibrated model has mean_predicted == fraction_positive.
    """
    edges = np.linspace(0, 1, n_bins + 1)
    index = np.clip(np.digitize(probability, edges[1:-1]), 0, n_bins - 1)
    frame = pd.DataFrame({"bin": index, "p": probability, "y": y_true})
    grouped = frame.groupby("bin").agg(mean_predicted=("p", "mean"),
                                       fraction_positive=("y", "mean"), reviews=("y", "size"))
    grouped.insert(0, "bin_high", edges[grouped.index + 1])
    grouped.insert(0, "bin_low", edges[grouped.index])
    return grouped.reset_index(drop=True).round(4)


def expected_calibration_error(bins: pd.DataFrame) -> float:
    """Review-weighted mean gap between predicted probability and observed share."""
    gaps = (bins.mean_predicted - bins.fraction_positive).abs()
    return round(float((gaps * bins.reviews).sum() / bins.reviews.sum()), 4)


def thin(frame: pd.DataFrame, max_points: int) -> pd.DataFrame:
    """At most max_points evenly spaced rows, always keeping the first and the last."""
    if len(frame) <= max_points:
        return frame.reset_index(drop=True)
    rows = np.unique(np.linspace(0, len(frame) - 1, max_points).round().astype(int))
    return frame.iloc[rows].reset_index(drop=True)


def roc_points(y_true: np.ndarray, probability: np.ndarray,
               max_points: int = MAX_CURVE_POINTS) -> pd.DataFrame:
    fpr, tpr, _ = skm.roc_curve(y_true, probability)
    return thin(pd.DataFrame({"fpr": fpr, "tpr": tpr}).round(5), max_points)


def precision_recall_points(y_true: np.ndarray, probability: np.ndarray,
                            max_points: int = MAX_CURVE_POINTS) -> pd.DataFrame:
    precision, recall, _ = skm.precision_recall_curve(y_true, probability)
    # sklearn lists recall from 1 down to 0; ascending reads (and plots) left to right
    frame = pd.DataFrame({"recall": recall[::-1], "precision": precision[::-1]})
    return thin(frame.round(5), max_points)


def score(y_true: np.ndarray, probability: np.ndarray, evaluate: EvaluateParams,
          seed: int) -> tuple[dict, dict[str, pd.DataFrame]]:
    """Test metrics with confidence intervals, and the curves for plots/<curve>/<model>.csv."""
    bins = reliability_bins(y_true, probability, evaluate.calibration_bins)
    scores = {
        **classification_metrics(y_true, probability, evaluate.threshold),
        **bootstrap_intervals(y_true, probability, evaluate.threshold, evaluate.n_bootstrap,
                              evaluate.confidence, seed),
        "ece": expected_calibration_error(bins),
        "confidence": evaluate.confidence,
    }
    curves = {"roc": roc_points(y_true, probability),
              "precision_recall": precision_recall_points(y_true, probability),
              "calibration": bins}
    return scores, curves


def predictions_frame(ids: np.ndarray, y_true: np.ndarray,
                      probability: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "label": np.asarray(y_true).astype("int8"),
                         "probability": np.asarray(probability).astype("float32")})


def write_predictions_and_curves(name: str, predictions: pd.DataFrame,
                                 curves: dict[str, pd.DataFrame]) -> None:
    with atomic_path(PREDICTIONS_DIR / f"{name}.parquet") as tmp:
        predictions.to_parquet(tmp, index=False)
    for curve, frame in curves.items():
        with atomic_path(CURVES_DIR / curve / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=False)


def log_to_mlflow(scores: dict, curves: dict[str, pd.DataFrame]) -> None:
    mlflow.log_metrics({f"test_{k}": v for k, v in scores.items() if not isinstance(v, dict)})
    mlflow.log_dict(scores, "evaluation/test_metrics.json")
    for curve, frame in curves.items():
        mlflow.log_text(frame.to_csv(index=False), f"evaluation/{curve}.csv")
