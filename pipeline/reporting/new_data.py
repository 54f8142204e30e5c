"""What `imdb retrain` says about new labelled reviews: the champion's accuracy on them before
retraining, their counts and drift (the intake stage's metrics/incoming.json), and each model's
test accuracy before (a git revision's committed metrics) and after the run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd

from pipeline.core.io import read_json
from pipeline.core.paths import (
    BASELINE_METRICS_DIR,
    EVAL_METRICS_DIR,
    HYBRID_METRICS_PATH,
    INCOMING_METRICS_PATH,
    INCOMING_PATH,
)

EXPERIMENT = "retraining"  # the MLflow experiment of the champion's check on new reviews


def champion_on_new_reviews() -> dict | None:
    """The current champion's accuracy on the accepted new reviews, before anything retrains,
    logged to MLflow; None when no new review was accepted."""
    if not INCOMING_PATH.exists():
        return None
    reviews = pd.read_parquet(INCOMING_PATH)
    if reviews.empty:
        return None
    import mlflow
    from mlflow.tracking import MlflowClient

    from pipeline.core import tracking
    from pipeline.core.config import load_params
    from pipeline.reporting.registry import CHAMPION, accuracy_on, current_champion
    from pipeline.serving import TEXT_COLUMN

    params = load_params()
    registered_model, threshold = params.report.registered_model, params.evaluate.threshold
    tracking.setup(EXPERIMENT)
    champion = current_champion(MlflowClient(), registered_model)
    result = {"reviews": len(reviews), "model": registered_model}
    if champion is None:
        return result | {"version": None, "accuracy": None, "reason": "no champion yet"}
    uri = f"models:/{registered_model}@{CHAMPION}"
    accuracy = accuracy_on(uri, reviews.rename(columns={"text": TEXT_COLUMN}), threshold)
    result |= {"version": champion.version, "accuracy": round(accuracy, 4)}
    with mlflow.start_run(run_name="champion-on-new-reviews", tags={
            "champion_version": champion.version, "data_hash": tracking.data_hash(
                INCOMING_PATH.parent)}):
        mlflow.log_metrics({"champion_accuracy_on_new_reviews": accuracy,
                            "new_reviews": len(reviews)})
    return result


def intake_report() -> dict | None:
    """metrics/incoming.json when the intake stage received reviews, else None."""
    if not INCOMING_METRICS_PATH.exists():
        return None
    report = read_json(INCOMING_METRICS_PATH)
    return report if report.get("received") else None


def model_metrics() -> dict[str, Path]:
    """Every model's test metrics file in the workspace: architectures, baselines, hybrid."""
    files = {p.stem: p for d in (EVAL_METRICS_DIR, BASELINE_METRICS_DIR)
             for p in sorted(d.glob("*.json"))}
    if HYBRID_METRICS_PATH.exists():
        files["hybrid"] = HYBRID_METRICS_PATH
    return files


def committed_accuracy(base: str, path: Path) -> float | None:
    """The accuracy in `path` as committed at `base`; None when it is not there."""
    shown = subprocess.run(["git", "show", f"{base}:{path.as_posix()}"], capture_output=True,
                           text=True)
    if shown.returncode != 0:
        return None
    return json.loads(shown.stdout).get("accuracy")


def before_after(base: str) -> pd.DataFrame:
    """One row per model: test accuracy at `base` and now, and the change."""
    rows = [{"model": name, "before": committed_accuracy(base, path),
             "after": read_json(path).get("accuracy")} for name, path in model_metrics().items()]
    table = pd.DataFrame(rows, columns=["model", "before", "after"])
    return table.assign(change=table.after - table.before)


def percent(value) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{100 * value:.2f}%"


def before_after_markdown(table: pd.DataFrame, base: str) -> str:
    if table.empty:
        return "No model metrics in this workspace."
    lines = [f"| model | test accuracy at `{base}` | this run | change |", "|---|---:|---:|---:|"]
    for row in table.itertuples():
        change = "n/a" if pd.isna(row.change) else f"{100 * row.change:+.2f} points"
        lines.append(f"| {row.model} | {percent(row.before)} | {percent(row.after)} | {change} |")
    return "\n".join(lines)


def new_reviews_markdown(report: dict | None, champion: dict | None) -> str:
    """Counts, drift and the champion's accuracy on the new reviews; a line when none came."""
    if report is None:
        return "No new labelled reviews in data/incoming."
    lines = [f"- Received {report['received']:,} in {report['files']} file(s); accepted "
             f"{report['accepted']:,} ({report['copies_of_training_reviews']} copies of training "
             f"reviews, {report['repeats_in_batch']} repeats; {report['dropped']} dropped); "
             f"`incoming.use: {report['use']}`."]
    if champion is not None:
        lines.append(f"- The champion before retraining, `{champion['model']}` version "
                     f"{champion['version']}, scores {percent(champion['accuracy'])} on them."
                     if champion["version"] else "- No champion yet to score them with.")
    drift = report.get("drift")
    if drift:
        label, length, oov = drift["label"], drift["length"], drift["oov"]
        flagged = ", ".join(drift["drifted"]) or "none"
        lines += ["", "| drift | new reviews | training split | comparison |",
                  "|---|---:|---:|---:|",
                  f"| positive share | {label['positive_share']:.3f} | "
                  f"{label['training_positive_share']:.3f} | p = {label['p_value']:.3g} |",
                  f"| median words | {length['median_words']:.0f} | "
                  f"{length['training_median_words']:.0f} | KS {length['ks_statistic']:.3f}, "
                  f"p = {length['p_value']:.3g} |",
                  f"| out-of-vocabulary words | {percent(oov['rate'])} | | "
                  f"{percent(oov['test_rate'])} (test split) |",
                  "", f"Drift flagged (p below `incoming.drift_p_value`): {flagged}."]
    return "\n".join(lines)
