"""Comparing models on the same test reviews: the table, McNemar's test, and the overfitting
numbers of lesson 3. Plain functions over data frames; the report stage does the I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from pipeline import UserError
from pipeline.core.paths import PREDICTIONS_DIR

TABLE_COLUMNS = ["architecture", "is_baseline", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
                 "f1", "f1_ci_low", "f1_ci_high", "roc_auc", "log_loss", "brier", "ece",
                 "confidence", "parameters", "epochs", "best_epoch", "confusion_matrix",
                 "test_reviews"]
# What the machine measured (timings/): reports/timings.csv, never comparison.csv
TIMING_COLUMNS = ["architecture", "is_baseline", "train_seconds", "train_samples_per_second",
                  "predict_ms_per_review"]


def comparison_table(train_metrics: dict[str, dict], eval_metrics: dict[str, dict],
                     baselines: dict[str, dict],
                     stacked: dict[str, dict] | None = None) -> pd.DataFrame:
    """One row per architecture, per stacked model (the hybrid, not trained by epochs) and per
    baseline, best test accuracy first."""
    rows = [{"architecture": arch, "is_baseline": False, **train_metrics[arch],
             **eval_metrics[arch]} for arch in train_metrics]
    rows += [{**metrics, "architecture": name, "is_baseline": False, "epochs": None,
              "best_epoch": None} for name, metrics in (stacked or {}).items()]
    rows += [{**metrics, "architecture": name, "is_baseline": True, "epochs": None,
              "best_epoch": None} for name, metrics in baselines.items()]
    for row in rows:
        row["test_reviews"] = sum(row["confusion_matrix"].values())
    table = pd.DataFrame(rows)[TABLE_COLUMNS]
    return table.sort_values("accuracy", ascending=False, kind="stable").reset_index(drop=True)


def timings_table(train_timings: dict[str, dict], eval_timings: dict[str, dict],
                  baselines: dict[str, dict], order: list[str] | None = None,
                  stacked: dict[str, dict] | None = None) -> pd.DataFrame:
    """One row per architecture, stacked model and baseline: training and inference time on
    this machine. In `order` (e.g. the comparison table's) when given."""
    rows = [{"architecture": arch, "is_baseline": False, **train_timings[arch],
             **eval_timings[arch]} for arch in train_timings]
    rows += [{**timings, "architecture": name, "is_baseline": False}
             for name, timings in (stacked or {}).items()]
    rows += [{**timings, "architecture": name, "is_baseline": True}
             for name, timings in baselines.items()]
    table = pd.DataFrame(rows).reindex(columns=TIMING_COLUMNS)
    if order is not None:
        table = table.set_index("architecture").loc[list(order)].reset_index()
    return table


def best_architecture(table: pd.DataFrame) -> str:
    """The most accurate model that is not a baseline (an architecture or the hybrid)."""
    return table[~table.is_baseline].architecture.iloc[0]


def against_strongest_baseline(table: pd.DataFrame, name: str, alpha: float) -> dict:
    """`name`'s McNemar comparison with the most accurate baseline, for the promotion gate."""
    strongest = baseline_names(table)[0]
    row = table.set_index("architecture").loc[name]
    points, p_value = float(row[f"vs_{strongest}_points"]), float(row[f"vs_{strongest}_p_value"])
    return {"baseline": strongest, "points": points, "p_value": p_value, "alpha": alpha,
            "significantly_worse": bool(p_value < alpha and points < 0),
            "text": row[f"vs_{strongest}_text"]}


def baseline_names(table: pd.DataFrame) -> list[str]:
    """The baselines, most accurate first: the first is the one a network has to beat."""
    return table[table.is_baseline].architecture.tolist()


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """McNemar's exact test on paired predictions: a two-sided binomial test of the reviews
    only A gets right against those only B gets right (each is equally likely under H0)."""
    only_a = int(np.sum(correct_a & ~correct_b))
    only_b = int(np.sum(~correct_a & correct_b))
    p_value = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_a": only_a, "only_b": only_b, "p_value": float(p_value)}


def check_paired(predictions: dict[str, pd.DataFrame]) -> None:
    (first, reference), *others = predictions.items()
    for name, frame in others:
        if not (len(frame) == len(reference)
                and (frame.id.to_numpy() == reference.id.to_numpy()).all()
                and (frame.label.to_numpy() == reference.label.to_numpy()).all()):
            raise UserError(f"{PREDICTIONS_DIR}/{name}.parquet and {PREDICTIONS_DIR}/{first}"
                            ".parquet do not hold the same test reviews in the same order: "
                            "run `dvc repro` so every model is scored on the current test set")


def format_p(p: float) -> str:
    return "p<0.0001" if p < 1e-4 else f"p={p:.3g}"


def verdict(points: float, p_value: float, alpha: float) -> str:
    """E.g. '-2.3 pts, significantly worse (McNemar p=0.0012)'."""
    if p_value < alpha:
        judgement = "significantly better" if points > 0 else "significantly worse"
    else:
        judgement = "no significant difference"
    return f"{points:+.1f} pts, {judgement} (McNemar {format_p(p_value)})"


def paired_comparison(predictions: dict[str, pd.DataFrame], name: str, reference: str,
                      threshold: float, alpha: float) -> dict:
    """`name` against `reference` on the same reviews: accuracy difference and McNemar."""
    label = predictions[name].label.to_numpy()
    correct = {m: (predictions[m].probability.to_numpy() >= threshold) == label
               for m in (name, reference)}
    test = mcnemar(correct[name], correct[reference])
    points = 100 * (correct[name].mean() - correct[reference].mean())
    return {"points": round(float(points), 2), "p_value": test["p_value"],
            "only_this": test["only_a"], "only_reference": test["only_b"],
            "text": verdict(points, test["p_value"], alpha)}


def add_paired_tests(table: pd.DataFrame, predictions: dict[str, pd.DataFrame], best: str,
                     threshold: float, alpha: float) -> pd.DataFrame:
    """Columns vs_<baseline>_* (each model against each baseline) and vs_best_* (against the
    best architecture)."""
    check_paired(predictions)
    table = table.copy()
    references = [(name, f"vs_{name}") for name in baseline_names(table)] + [(best, "vs_best")]
    for reference, prefix in references:
        results = [paired_comparison(predictions, name, reference, threshold, alpha)
                   if name != reference else {} for name in table.architecture]
        for key in ("points", "p_value", "only_this", "only_reference", "text"):
            table[f"{prefix}_{key}"] = [r.get(key) for r in results]
    return table


def overfitting_table(histories: dict[str, pd.DataFrame],
                      train_metrics: dict[str, dict]) -> pd.DataFrame:
    """Per architecture: the kept epoch, and how far train and validation drift apart."""
    rows = []
    for arch, history in histories.items():
        kept_epoch = train_metrics[arch]["best_epoch"]
        kept, last = history[history.epoch == kept_epoch].iloc[0], history.iloc[-1]
        rows.append({
            "architecture": arch,
            "epochs": len(history),
            "kept_epoch": kept_epoch,
            "kept_train_accuracy": kept.accuracy,
            "kept_val_accuracy": kept.val_accuracy,
            "kept_gap_pts": round(100 * (kept.accuracy - kept.val_accuracy), 2),
            "last_train_accuracy": last.accuracy,
            "last_val_accuracy": last.val_accuracy,
            "last_gap_pts": round(100 * (last.accuracy - last.val_accuracy), 2),
            "val_loss_rise": round(last.val_loss - kept.val_loss, 4),
        })
    return pd.DataFrame(rows).sort_values("last_gap_pts", ascending=False).reset_index(drop=True)


def tuning_table(tuned: dict[str, dict], train_metrics: dict[str, dict],
                 eval_metrics: dict[str, dict]) -> pd.DataFrame:
    """Per architecture: the params.yaml defaults against the tuned values, on validation and
    test, and how far validation accuracy overstates test accuracy.

    Tuned values come from train and evaluate; the defaults' scores from the tune stage's trial
    0, which trains exactly as train does. An untuned architecture's defaults are its model.
    """
    rows = []
    for arch, result in tuned.items():
        val, test = train_metrics[arch]["best_val_accuracy"], eval_metrics[arch]["accuracy"]
        searched = bool(result.get("tuned"))
        trials = result.get("trials") or {}
        rows.append({
            "architecture": arch, "tuned": searched,
            "trials": trials.get("complete", 0) + trials.get("pruned", 0),
            "trials_pruned": trials.get("pruned", 0),
            "defaults_val_accuracy": result.get("defaults_value") if searched else val,
            "tuned_val_accuracy": val,
            "defaults_test_accuracy": result.get("defaults_test_accuracy") if searched else test,
            "tuned_test_accuracy": test,
            "val_test_gap_pts": round(100 * (val - test), 2),
        })
    table = pd.DataFrame(rows)
    for split in ("val", "test"):
        table[f"{split}_gain_pts"] = (100 * (table[f"tuned_{split}_accuracy"]
                                             - table[f"defaults_{split}_accuracy"])).round(2)
    return table
