"""The report's charts: each function draws one PNG from data frames the report hands it."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
from matplotlib.ticker import (  # noqa: E402
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)

BASELINE_STYLE = {"color": "black", "ls": "--", "lw": 1.6}


def _save(fig, path: Path, dpi: int = 100) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def accuracy_chart(table: pd.DataFrame, path: Path) -> None:
    """Test accuracy per model with its confidence interval; the baselines in grey, the most
    accurate one dashed."""
    ordered = table.sort_values("accuracy")
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(table) + 1.5))
    errors = [ordered.accuracy - ordered.accuracy_ci_low,
              ordered.accuracy_ci_high - ordered.accuracy]
    colors = ["tab:grey" if b else "tab:blue" for b in ordered.is_baseline]
    ax.barh(ordered.architecture, ordered.accuracy, xerr=errors, color=colors, capsize=3)
    for y, row in enumerate(ordered.itertuples()):
        ax.text(row.accuracy_ci_high + 0.002, y, f"{row.accuracy:.1%}", va="center", fontsize=9)
    if ordered.is_baseline.any():
        ax.axvline(ordered[ordered.is_baseline].accuracy.max(), **BASELINE_STYLE)
    ax.set_xlim(max(0.0, ordered.accuracy_ci_low.min() - 0.05), 1.0)
    ax.set_xlabel(f"test accuracy (bars: {ordered.confidence.iloc[0]:.0%} bootstrap CI)")
    ax.set_title("Test accuracy by model (dashed: the strongest baseline)")
    _save(fig, path, dpi=110)


def accuracy_vs_time_chart(table: pd.DataFrame, path: Path) -> None:
    """`table`: the comparison table with timings.csv's train_seconds merged in."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for row in table.itertuples():
        style = {"color": "black", "marker": "s"} if row.is_baseline else {"marker": "o"}
        seconds = max(row.train_seconds, 0.1)  # a log axis has no 0 (tiny runs round to 0.0)
        ax.errorbar(seconds, row.accuracy, capsize=3, ls="none",
                    yerr=[[row.accuracy - row.accuracy_ci_low],
                          [row.accuracy_ci_high - row.accuracy]], **style)
        ax.annotate(row.architecture, (seconds, row.accuracy), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training time (s, log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy vs training time")
    ax.grid(alpha=0.3)
    _save(fig, path)


def learning_curves_chart(histories: dict[str, pd.DataFrame], kept_epochs: dict[str, int],
                          path: Path, metric: str = "loss") -> None:
    """Train vs validation `metric` per architecture; dotted line: the epoch early stopping kept."""
    columns = 5
    rows = -(-len(histories) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False,
                             sharey=True)
    for ax, (arch, history) in zip(axes.flat, histories.items(), strict=False):
        ax.plot(history.epoch, history[metric], marker=".", label="train")
        ax.plot(history.epoch, history[f"val_{metric}"], marker=".", label="validation")
        kept = kept_epochs[arch]
        ax.axvline(kept, color="grey", ls=":", lw=1)
        ax.plot(kept, history.loc[history.epoch == kept, f"val_{metric}"], "o", color="tab:red",
                ms=6, label="kept")
        ax.set_title(arch, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(histories):]:
        ax.axis("off")
    axes[0][0].set_ylabel(metric)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Train vs validation {metric} (red dot, dotted line: epoch kept by early "
                 "stopping)")
    _save(fig, path)


def _overlay(curves: dict[str, pd.DataFrame], baselines: list[str], ax, x: str, y: str,
             labels: dict[str, str] | None = None) -> None:
    for name, frame in curves.items():
        label = labels[name] if labels else name
        if name in baselines:
            ax.plot(frame[x], frame[y], label=label, zorder=3, **_baseline_style(name, baselines))
        else:
            ax.plot(frame[x], frame[y], label=label, lw=1.1)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)


def _baseline_style(name: str, baselines: list[str]) -> dict:
    """Dashed black for the first (the strongest) baseline, dotted black for the others."""
    return BASELINE_STYLE if name == baselines[0] else {**BASELINE_STYLE, "ls": ":"}


def roc_chart(curves: dict[str, pd.DataFrame], auc: dict[str, float], baselines: list[str],
              path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 6))
    ax.plot([0, 1], [0, 1], color="lightgrey", lw=1)
    _overlay(curves, baselines, ax, "fpr", "tpr",
             {name: f"{name} (AUC {auc[name]:.3f})" for name in curves})
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curves on the test set")
    _save(fig, path)


def precision_recall_chart(curves: dict[str, pd.DataFrame], baselines: list[str],
                           path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 6))
    _overlay(curves, baselines, ax, "recall", "precision")
    ax.set_ylim(0.45, 1.01)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall curves on the test set")
    ax.legend(fontsize=7, loc="lower left")
    _save(fig, path)


def calibration_chart(bins: dict[str, pd.DataFrame], brier: dict[str, float],
                      baselines: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 6))
    ax.plot([0, 1], [0, 1], color="lightgrey", lw=1, label="perfectly calibrated")
    for name, frame in bins.items():
        style = _baseline_style(name, baselines) if name in baselines else {"lw": 1.1}
        ax.plot(frame.mean_predicted, frame.fraction_positive, marker=".",
                label=f"{name} (Brier {brier[name]:.3f})", **style)
    ax.set_xlabel("mean predicted probability of positive")
    ax.set_ylabel("observed share of positive reviews")
    ax.set_title("Reliability diagram (test set)")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    _save(fig, path)


WORD_ORDER_LABELS = {"negated_praise": "negated praise", "negated_pans": "negated pans",
                     "all_negation": "all negation", "but_clauses": "\"but\" clauses"}


def word_order_chart(table: pd.DataFrame, target: float, path: Path) -> None:
    """`table`: behavior.word_order_table, the most accurate model first (drawn at the top);
    one group of bars per model, one bar per word-order column; dashed: the negation target."""
    columns = [c for c in WORD_ORDER_LABELS if c in table.columns]
    height = 0.8 / len(columns)
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(table) + 1.5))
    for i, column in enumerate(columns):
        offsets = [len(table) - 1 - y + 0.4 - height * (i + 0.5) for y in range(len(table))]
        ax.barh(offsets, table[column], height=height,
                label=f"{WORD_ORDER_LABELS[column]} ({table[f'{column}_cases'].iloc[0]} cases)")
    ax.set_yticks(range(len(table)))
    ax.set_yticklabels([f"{row.model} (baseline)" if row.is_baseline else row.model
                        for row in table[::-1].itertuples()])
    ax.axvline(target, color="black", ls="--", lw=1.2, label=f"negation target ({target:.0%})")
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0%}"))
    ax.set_xlabel("share of cases passed")
    ax.set_title("Word order: negation and \"but\" clauses (behavioral tests)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)
