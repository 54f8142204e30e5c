"""Stage `report`: compare every architecture, and offer the best one as the champion.

Reads the per-architecture metrics and histories the train and evaluate stages wrote; runs the
behavioral tests (pipeline/behavior.py) on the best model; writes reports/comparison.{csv,md},
reports/promotion.json, reports/behavior.csv, reports/accuracy.png and
reports/learning_curves.png, all logged to one MLflow run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib
import mlflow
import pandas as pd

from pipeline import UserError, behavior, run_stage, tracking
from pipeline.config import load_params
from pipeline.download import REVIEWS_PATH
from pipeline.evaluate import EVAL_METRICS_DIR
from pipeline.export import EXPORT_DIR, TEXT_COLUMN
from pipeline.io import atomic_path, read_json, write_json
from pipeline.registry import promote_if_better
from pipeline.train import HISTORY_DIR, TRAIN_METRICS_DIR

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

log = logging.getLogger(__name__)

REPORTS_DIR = Path("reports")
# column -> (heading, format)
COLUMNS = {
    "architecture": ("architecture", "{}"),
    "accuracy": ("test accuracy", "{:.4f}"),
    "f1": ("F1", "{:.4f}"),
    "roc_auc": ("ROC-AUC", "{:.4f}"),
    "log_loss": ("log loss", "{:.4f}"),
    "parameters": ("parameters", "{:,}"),
    "epochs": ("epochs", "{}"),
    "best_epoch": ("best epoch", "{}"),
    "train_seconds": ("training time (s)", "{:.1f}"),
    "predict_ms_per_review": ("inference (ms/review)", "{:.3f}"),
}


def comparison_table(train_metrics: dict[str, dict], eval_metrics: dict[str, dict]) -> pd.DataFrame:
    rows = [{"architecture": arch, **train_metrics[arch], **eval_metrics[arch],
             "test_reviews": sum(eval_metrics[arch]["confusion_matrix"].values())}
            for arch in train_metrics]
    table = pd.DataFrame(rows)[[*COLUMNS, "test_reviews"]]
    return table.sort_values("accuracy", ascending=False).reset_index(drop=True)


def to_markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(heading for heading, _ in COLUMNS.values()) + " |"
    rule = "|" + "|".join("---" if c == "architecture" else "---:" for c in COLUMNS) + "|"
    lines = ["| " + " | ".join(fmt.format(row[c]) for c, (_, fmt) in COLUMNS.items()) + " |"
             for _, row in table.iterrows()]
    title = f"# Architecture comparison (IMDB test set, {table.test_reviews.max():,} reviews)"
    return "\n".join([title, "", header, rule, *lines, ""])


def accuracy_chart(table: pd.DataFrame, path: Path) -> None:
    ordered = table.sort_values("accuracy")
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(table) + 1.5))
    ax.barh(ordered.architecture, ordered.accuracy, color="tab:blue")
    for y, value in enumerate(ordered.accuracy):
        ax.text(value + 0.002, y, f"{value:.1%}", va="center", fontsize=9)
    ax.set_xlim(max(0.0, ordered.accuracy.min() - 0.1), 1.0)
    ax.set_xlabel("test accuracy")
    ax.set_title("IMDB test accuracy by architecture")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def learning_curves_chart(histories: dict[str, pd.DataFrame], path: Path) -> None:
    columns = 5
    rows = -(-len(histories) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False,
                             sharey=True)
    for ax, (arch, history) in zip(axes.flat, histories.items(), strict=False):
        ax.plot(history.epoch, history.loss, label="train")
        ax.plot(history.epoch, history.val_loss, label="validation")
        ax.axvline(history.epoch[history.val_loss.idxmin()], color="grey", ls=":", lw=1)
        ax.set_title(arch, fontsize=10)
        ax.set_xlabel("epoch")
    for ax in list(axes.flat)[len(histories):]:
        ax.axis("off")
    axes[0][0].set_ylabel("loss")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Train vs validation loss (dotted: epoch kept by early stopping)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def promotion_markdown(decision: dict, registered_model: str) -> str:
    champion = decision["champion_accuracy"]
    verdict = "promoted to champion" if decision["promoted"] else "not promoted"
    return "\n".join([
        "", "## Champion", "",
        f"Candidate: `{decision['candidate_architecture']}`, version {decision['version']} of "
        f"registered model `{registered_model}`, test accuracy "
        f"{decision['candidate_accuracy']:.4f}; current champion: "
        + ("none" if champion is None else
           f"version {decision['champion_version']}, {champion:.4f} on the same test set")
        + f". Decision: **{verdict}** ({decision['reason']}).", ""])


def gate_markdown(decision: dict, per_test: pd.DataFrame) -> str:
    """The two promotion gates, which one held the candidate back, and the behavioral tests."""
    thresholds = decision["behavior_thresholds"] or {}
    rates = decision["behavior_pass_rates"] or {}
    held = decision["held_back_by"]
    champion = decision["champion_accuracy"]
    lines = ["", "## Promotion gates", "",
             "| gate | candidate | required | passed |", "|---|---:|---:|---|",
             f"| accuracy | {decision['candidate_accuracy']:.4f} | "
             + ("any (no champion)" if champion is None else
                f"{champion:.4f} + {decision['margin']}")
             + f" | {'no' if 'accuracy' in held else 'yes'} |"]
    for kind, threshold in thresholds.items():
        rate = rates.get(kind)
        shown = "n/a" if rate is None else f"{rate:.3f}"
        passed = rate is not None and rate >= threshold
        lines.append(f"| behavior: {kind} pass rate | {shown} | {threshold} | "
                     f"{'yes' if passed else 'no'} |")
    if held:
        verdict = "Held back by the " + " and the ".join(held) + " gate" + "s" * (len(held) > 1)
    elif decision["promoted"]:
        verdict = "No gate held the candidate back"
    else:
        verdict = f"Not promoted: {decision['reason']}"
    lines += ["", verdict + ".", "",
              "Behavioral tests of the candidate (CheckList; cases in "
              "`pipeline/behavior_cases.yaml`, each case in `reports/behavior.csv`):", "",
              "| type | test | cases | pass rate |", "|---|---|---:|---:|"]
    lines += [f"| {row.type} | {row.test} | {row.cases} | {row.pass_rate:.3f} |"
              for row in per_test.itertuples()]
    return "\n".join(lines + [""])


def main() -> None:
    params = load_params()
    architectures = params.architectures
    missing = [a for a in architectures if not (EVAL_METRICS_DIR / f"{a}.json").exists()]
    if missing:
        raise UserError(f"no test metrics for {', '.join(missing)}: run `dvc repro` first")
    train_metrics = {a: read_json(TRAIN_METRICS_DIR / f"{a}.json") for a in architectures}
    eval_metrics = {a: read_json(EVAL_METRICS_DIR / f"{a}.json") for a in architectures}
    histories = {a: pd.read_csv(HISTORY_DIR / f"{a}.csv") for a in architectures}
    table = comparison_table(train_metrics, eval_metrics)
    best = table.architecture[0]
    reviews = pd.read_parquet(REVIEWS_PATH)
    test = reviews[reviews.split == "test"].rename(columns={"text": TEXT_COLUMN})

    tracking.setup()
    with atomic_path(REPORTS_DIR) as tmp:
        tmp.mkdir()
        tags = {"stage": "report", "git_commit": tracking.git_commit()}
        with mlflow.start_run(run_name="comparison-report", tags=tags):
            model_uri = (EXPORT_DIR / best / "model_uri.txt").read_text().strip()
            results = behavior.run_suite(behavior.model_predictor(model_uri),
                                         behavior.load_cases(), params.evaluate.threshold,
                                         params.report.behavior_dir_tolerance)
            pass_rates = behavior.log_to_mlflow(results)
            decision = promote_if_better(params.report.registered_model, best, model_uri, test,
                                         params.evaluate.threshold,
                                         params.report.promotion_margin, pass_rates,
                                         params.report.behavior_thresholds).as_dict()
            table.to_csv(tmp / "comparison.csv", index=False)
            results.to_csv(tmp / "behavior.csv", index=False)
            (tmp / "comparison.md").write_text(
                to_markdown(table) + promotion_markdown(decision, params.report.registered_model)
                + gate_markdown(decision, behavior.pass_rates_by_test(results)),
                encoding="utf-8")
            write_json(tmp / "promotion.json", decision)
            accuracy_chart(table, tmp / "accuracy.png")
            learning_curves_chart(histories, tmp / "learning_curves.png")
            mlflow.log_artifacts(str(tmp), artifact_path="report")
            mlflow.log_metrics({f"{row.architecture}_test_accuracy": row.accuracy
                                for row in table.itertuples()})
            mlflow.log_params({f"champion.{k}": v for k, v in decision.items()})
    log.info("best: %s (%.4f), %s; report in %s", best, table.accuracy[0],
             "promoted" if decision["promoted"] else "not promoted", REPORTS_DIR)


if __name__ == "__main__":
    run_stage(main)
