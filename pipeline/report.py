"""Stage `report`: compare every architecture with each other and with the TF-IDF baseline,
and offer the best architecture as the champion.

Reads what train, evaluate and baseline wrote. Writes to reports/: comparison.md (the report),
report.html (the same, one self-contained page with the charts embedded), comparison.csv,
overfitting.csv, promotion.json and the charts as PNGs, all logged to one MLflow run.
"""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from markdown_it import MarkdownIt
from scipy.stats import binomtest

from pipeline import UserError, run_stage, tracking
from pipeline.baseline import BASELINE_METRICS_PATH, BASELINE_NAME
from pipeline.charts import (
    accuracy_chart,
    accuracy_vs_time_chart,
    calibration_chart,
    learning_curves_chart,
    precision_recall_chart,
    roc_chart,
)
from pipeline.config import load_params
from pipeline.download import REVIEWS_PATH
from pipeline.evaluate import CURVES, CURVES_DIR, EVAL_METRICS_DIR, PREDICTIONS_DIR
from pipeline.export import EXPORT_DIR, TEXT_COLUMN
from pipeline.io import atomic_path, read_json, write_json
from pipeline.registry import promote_if_better
from pipeline.train import HISTORY_DIR, TRAIN_METRICS_DIR

log = logging.getLogger(__name__)

REPORTS_DIR = Path("reports")
TABLE_COLUMNS = ["architecture", "is_baseline", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
                 "f1", "f1_ci_low", "f1_ci_high", "roc_auc", "log_loss", "brier", "ece",
                 "confidence", "parameters", "epochs", "best_epoch", "train_seconds",
                 "predict_ms_per_review", "confusion_matrix", "test_reviews"]


# ---- the comparison table -------------------------------------------------------------------

def comparison_table(train_metrics: dict[str, dict], eval_metrics: dict[str, dict],
                     baseline: dict) -> pd.DataFrame:
    """One row per architecture plus one for the baseline, best test accuracy first."""
    rows = [{"architecture": arch, "is_baseline": False, **train_metrics[arch],
             **eval_metrics[arch]} for arch in train_metrics]
    rows.append({**baseline, "architecture": BASELINE_NAME, "is_baseline": True,
                 "epochs": None, "best_epoch": None})
    for row in rows:
        row["test_reviews"] = sum(row["confusion_matrix"].values())
    table = pd.DataFrame(rows)[TABLE_COLUMNS]
    return table.sort_values("accuracy", ascending=False, kind="stable").reset_index(drop=True)


def best_architecture(table: pd.DataFrame) -> str:
    """The most accurate network: the champion candidate (the baseline is not exported)."""
    return table[~table.is_baseline].architecture.iloc[0]


# ---- paired significance --------------------------------------------------------------------

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
    """Columns vs_baseline_* (each model against the TF-IDF baseline) and vs_best_* (against
    the best architecture)."""
    check_paired(predictions)
    table = table.copy()
    for reference, prefix in ((BASELINE_NAME, "vs_baseline"), (best, "vs_best")):
        results = [paired_comparison(predictions, name, reference, threshold, alpha)
                   if name != reference else {} for name in table.architecture]
        for key in ("points", "p_value", "only_this", "only_reference", "text"):
            table[f"{prefix}_{key}"] = [r.get(key) for r in results]
    return table


# ---- lesson 3: overfitting ------------------------------------------------------------------

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


# ---- markdown and HTML ----------------------------------------------------------------------

def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _ci(row, metric: str) -> str:
    return f"{_pct(row[metric])} [{100 * row[f'{metric}_ci_low']:.2f}, " \
           f"{100 * row[f'{metric}_ci_high']:.2f}]"


def _or_dash(text) -> str:
    return "—" if pd.isna(text) else text


def _markdown_table(headings: list[str], rows: list[list[str]], align: str) -> list[str]:
    """align: one letter per column, l or r."""
    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    return ["| " + " | ".join(headings) + " |", rule,
            *("| " + " | ".join(row) + " |" for row in rows)]


def to_markdown(table: pd.DataFrame, best: str) -> str:
    """The comparison table, best test accuracy first."""
    level = f"{table.confidence.iloc[0]:.0%} CI"
    headings = ["model", f"test accuracy [{level}]", f"F1 [{level}]", "ROC-AUC", "parameters",
                "epochs (kept)", "training time (s)", "inference (ms/review)",
                "vs TF-IDF baseline", f"vs best ({best})"]
    rows = []
    for _, row in table.iterrows():
        name = f"**{row.architecture}** (baseline)" if row.is_baseline else row.architecture
        epochs = "—" if row.is_baseline else f"{int(row.epochs)} ({int(row.best_epoch)})"
        rows.append([name, _ci(row, "accuracy"), _ci(row, "f1"), f"{row.roc_auc:.4f}",
                     f"{int(row.parameters):,}", epochs, f"{row.train_seconds:.1f}",
                     f"{row.predict_ms_per_review:.3f}", _or_dash(row.vs_baseline_text),
                     _or_dash(row.vs_best_text)])
    return "\n".join(_markdown_table(headings, rows, "lrrrrrrrll"))


def summary_markdown(table: pd.DataFrame, best: str, alpha: float) -> str:
    """Where the architectures stand against the baseline, in plain words."""
    base = table[table.is_baseline].iloc[0]
    nets = table[~table.is_baseline]
    significant = nets.vs_baseline_p_value < alpha
    better = int((significant & (nets.vs_baseline_points > 0)).sum())
    worse = int((significant & (nets.vs_baseline_points < 0)).sum())
    top = nets[nets.architecture == best].iloc[0]
    lines = [
        f"The TF-IDF + logistic-regression baseline (word uni- and bigrams) reaches "
        f"**{_ci(base, 'accuracy')}** test accuracy after {base.train_seconds:.0f} s of "
        f"training. Of {len(nets)} architectures, **{better} are significantly better**, "
        f"**{worse} significantly worse** and {len(nets) - better - worse} not significantly "
        f"different (McNemar, α={alpha:.2g}). The best architecture, `{best}`, reaches "
        f"{_ci(top, 'accuracy')}: {top.vs_baseline_text} against the baseline."]
    if better == 0:
        lines.append("No architecture is significantly more accurate than the baseline, so on "
                     "test accuracy alone the baseline is the one to pick.")
    return "\n\n".join(lines)


METHOD_NOTES = """\
- **Confidence intervals**: percentile bootstrap over the {reviews:,} test reviews,
  {n_bootstrap} resamples, seeded from `seed` (`evaluate.n_bootstrap`, `evaluate.confidence`).
- **Significance**: McNemar's exact test on paired predictions (the same reviews for every
  model): a two-sided binomial test on the reviews exactly one of the two models gets right.
  Significant means p < {alpha:.2g} (`1 - evaluate.confidence`); p-values are not adjusted for
  the {tests} comparisons (Bonferroni would ask for p < {bonferroni:.2g}).
- **Inference time**: the networks score token ids prepared in advance (batched by length);
  the baseline's time includes vectorizing the raw text. Times depend on the machine."""


def significance_markdown(table: pd.DataFrame, best: str) -> str:
    others = table[table.architecture != best]
    rows = [[row.architecture, f"{row.vs_best_points:+.2f}", f"{row.vs_best_only_reference:,.0f}",
             f"{row.vs_best_only_this:,.0f}", format_p(row.vs_best_p_value), row.vs_best_text]
            for row in others.itertuples()]
    return "\n".join(_markdown_table(
        ["model", f"accuracy vs {best} (pts)", f"only {best} right", "only this model right",
         "McNemar p", "verdict"], rows, "lrrrrl"))


def calibration_markdown(table: pd.DataFrame) -> str:
    ordered = table.sort_values("brier")
    rows = [[row.architecture, f"{row.brier:.4f}", f"{row.ece:.4f}", f"{row.log_loss:.4f}",
             "{tn:,} / {fp:,} / {fn:,} / {tp:,}".format(**row.confusion_matrix)]
            for row in ordered.itertuples()]
    return "\n".join(_markdown_table(
        ["model", "Brier score", "ECE", "log loss", "confusion matrix TN / FP / FN / TP"],
        rows, "lrrrr"))


def overfitting_markdown(overfitting: pd.DataFrame) -> str:
    rows = [[row.architecture, str(row.epochs), str(row.kept_epoch),
             f"{_pct(row.kept_train_accuracy)} / {_pct(row.kept_val_accuracy)}",
             f"{row.kept_gap_pts:+.1f}",
             f"{_pct(row.last_train_accuracy)} / {_pct(row.last_val_accuracy)}",
             f"{row.last_gap_pts:+.1f}", f"{row.val_loss_rise:+.4f}"]
            for row in overfitting.itertuples()]
    worst = overfitting.iloc[0]
    lines = [
        "Each panel of the learning curves shows training and validation loss (and accuracy) per "
        "epoch; the red dot marks the epoch early stopping kept (lowest validation loss, best "
        "weights restored). Past that epoch training loss keeps falling while validation loss "
        "rises: the model memorizes the training reviews instead of learning what generalizes. "
        f"The widest train-validation gap at the last epoch is `{worst.architecture}`'s, "
        f"{worst.last_gap_pts:.1f} points.",
        "", *_markdown_table(
            ["architecture", "epochs run", "kept epoch", "train / val accuracy at kept epoch",
             "gap (pts)", "train / val accuracy at last epoch", "gap (pts)",
             "val loss rise after kept epoch"], rows, "lrrrrrrr")]
    return "\n".join(lines)


def report_markdown(table: pd.DataFrame, overfitting: pd.DataFrame, best: str, alpha: float,
                    n_bootstrap: int) -> str:
    reviews = int(table.test_reviews.max())
    tests = 2 * len(table) - 3  # each model vs the baseline, and vs the best
    return "\n".join([
        f"# Architecture comparison (IMDB test set, {reviews:,} reviews)", "",
        summary_markdown(table, best, alpha), "",
        to_markdown(table, best), "",
        METHOD_NOTES.format(reviews=reviews, n_bootstrap=n_bootstrap, alpha=alpha, tests=tests,
                            bonferroni=alpha / tests), "",
        "![Test accuracy with confidence intervals](accuracy.png)", "",
        "![Accuracy vs training time](accuracy_vs_training_time.png)", "",
        f"## Paired significance: `{best}` against every other model", "",
        significance_markdown(table, best), "",
        "## ROC and precision-recall", "",
        "![ROC curves](roc.png) ![Precision-recall curves](precision_recall.png)", "",
        "## Calibration and confusion matrices", "",
        "Brier score: mean squared error of the predicted probability (lower is better); ECE: "
        "review-weighted gap between predicted probability and observed share of positives in "
        "the reliability diagram's bins.", "",
        calibration_markdown(table), "",
        "![Reliability diagram](calibration.png)", "",
        "## Lesson 3: overfitting", "",
        overfitting_markdown(overfitting), "",
        "![Learning curves, loss](learning_curves_loss.png)", "",
        "![Learning curves, accuracy](learning_curves_accuracy.png)", ""])


HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
code {{ background: #f3f3f3; padding: 0 0.2em; }}
</style></head>
<body>
{body}
</body></html>
"""


def to_html(markdown: str, image_dir: Path) -> str:
    """One self-contained page: every image the markdown names is embedded as a data URI."""
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = parser.parse(markdown)
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                image = image_dir / child.attrs["src"]
                if not image.is_file():
                    raise UserError(f"the report names {image}, which was not written")
                data = base64.b64encode(image.read_bytes()).decode("ascii")
                child.attrs["src"] = f"data:image/png;base64,{data}"
    title = markdown.splitlines()[0].lstrip("# ")
    return HTML_PAGE.format(title=html.escape(title),
                            body=parser.renderer.render(tokens, parser.options, {}))


# ---- charts and MLflow ----------------------------------------------------------------------

def write_charts(directory: Path, table: pd.DataFrame, histories: dict[str, pd.DataFrame],
                 train_metrics: dict[str, dict],
                 curves: dict[str, dict[str, pd.DataFrame]]) -> None:
    kept = {arch: train_metrics[arch]["best_epoch"] for arch in histories}
    by_name = table.set_index("architecture")
    accuracy_chart(table, directory / "accuracy.png")
    accuracy_vs_time_chart(table, directory / "accuracy_vs_training_time.png")
    for metric in ("loss", "accuracy"):
        learning_curves_chart(histories, kept, directory / f"learning_curves_{metric}.png",
                              metric)
    roc_chart(curves["roc"], by_name.roc_auc.to_dict(), BASELINE_NAME, directory / "roc.png")
    precision_recall_chart(curves["precision_recall"], BASELINE_NAME,
                           directory / "precision_recall.png")
    calibration_chart(curves["calibration"], by_name.brier.to_dict(), BASELINE_NAME,
                      directory / "calibration.png")


def report_metrics(table: pd.DataFrame) -> dict[str, float]:
    metrics = {}
    for row in table.itertuples():
        for key in ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "f1", "brier"):
            metrics[f"{row.architecture}_test_{key}"] = getattr(row, key)
        for prefix in ("vs_baseline", "vs_best"):
            p_value = getattr(row, f"{prefix}_p_value")
            if not pd.isna(p_value):
                metrics[f"{row.architecture}_{prefix}_mcnemar_p"] = p_value
    return metrics


# ---- the champion ---------------------------------------------------------------------------

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


# ---- the stage ------------------------------------------------------------------------------

def load_inputs(architectures: tuple[str, ...]) -> dict:
    names = [*architectures, BASELINE_NAME]
    expected = [*(EVAL_METRICS_DIR / f"{a}.json" for a in architectures), BASELINE_METRICS_PATH,
                *(PREDICTIONS_DIR / f"{n}.parquet" for n in names),
                *(CURVES_DIR / c / f"{n}.csv" for c in CURVES for n in names)]
    missing = [str(path) for path in expected if not path.exists()]
    if missing:
        raise UserError(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}: "
                        "run `dvc repro` first")
    return {
        "train": {a: read_json(TRAIN_METRICS_DIR / f"{a}.json") for a in architectures},
        "eval": {a: read_json(EVAL_METRICS_DIR / f"{a}.json") for a in architectures},
        "baseline": read_json(BASELINE_METRICS_PATH),
        "histories": {a: pd.read_csv(HISTORY_DIR / f"{a}.csv") for a in architectures},
        "predictions": {n: pd.read_parquet(PREDICTIONS_DIR / f"{n}.parquet") for n in names},
        "curves": {c: {n: pd.read_csv(CURVES_DIR / c / f"{n}.csv") for n in names}
                   for c in CURVES},
    }


def write_report(directory: Path, inputs: dict, table: pd.DataFrame,
                 overfitting: pd.DataFrame, best: str, alpha: float, n_bootstrap: int,
                 extra_markdown: str = "") -> None:
    """The tables as CSV, the charts, comparison.md and the self-contained report.html."""
    table.to_csv(directory / "comparison.csv", index=False)
    overfitting.to_csv(directory / "overfitting.csv", index=False)
    write_charts(directory, table, inputs["histories"], inputs["train"], inputs["curves"])
    markdown = report_markdown(table, overfitting, best, alpha, n_bootstrap) + extra_markdown
    (directory / "comparison.md").write_text(markdown, encoding="utf-8")
    (directory / "report.html").write_text(to_html(markdown, directory), encoding="utf-8")


def main() -> None:
    params = load_params()
    inputs = load_inputs(params.architectures)
    alpha = round(1 - params.evaluate.confidence, 6)
    table = comparison_table(inputs["train"], inputs["eval"], inputs["baseline"])
    best = best_architecture(table)
    table = add_paired_tests(table, inputs["predictions"], best, params.evaluate.threshold, alpha)
    overfitting = overfitting_table(inputs["histories"], inputs["train"])
    reviews = pd.read_parquet(REVIEWS_PATH)
    test = reviews[reviews.split == "test"].rename(columns={"text": TEXT_COLUMN})

    tracking.setup()
    with atomic_path(REPORTS_DIR) as tmp:
        tmp.mkdir()
        tags = {"stage": "report", "git_commit": tracking.git_commit()}
        with mlflow.start_run(run_name="comparison-report", tags=tags):
            model_uri = (EXPORT_DIR / best / "model_uri.txt").read_text().strip()
            decision = promote_if_better(params.report.registered_model, best, model_uri, test,
                                         params.evaluate.threshold,
                                         params.report.promotion_margin).as_dict()
            write_report(tmp, inputs, table, overfitting, best, alpha,
                         params.evaluate.n_bootstrap,
                         promotion_markdown(decision, params.report.registered_model))
            write_json(tmp / "promotion.json", decision)
            mlflow.log_artifacts(str(tmp), artifact_path="report")
            mlflow.log_metrics(report_metrics(table))
            mlflow.log_params({f"champion.{k}": v for k, v in decision.items()})
    log.info("best: %s (%.4f), %s; report in %s", best,
             table[table.architecture == best].accuracy.iloc[0],
             "promoted" if decision["promoted"] else "not promoted", REPORTS_DIR / "report.html")


if __name__ == "__main__":
    run_stage(main)
