"""Stage `report`: compare every architecture with each other and with the bag-of-words
baselines (TF-IDF + logistic regression, NBSVM),
and name the candidate for champion: the most accurate architecture that passes the
behavioral tests. Registering it and moving the alias is the `promote` stage's.

Reads what train, evaluate, baseline and export wrote; runs the behavioral tests
(pipeline/reporting/behavior.py) on every model's raw-text model in exported/ (the
architectures, the hybrid and both baselines; only the first two can be the candidate).
Writes to reports/: comparison.md (the report), report.html (the same, one self-contained page
with the charts embedded, plus the timings table), comparison.csv, overfitting.csv, tuning.csv,
behavior.csv (every case and model), behavior_pass_rates.csv, word_order.csv (lesson 4: the
word-order tests per model), timings.csv, candidate.json (what promote reads) and the charts,
all logged to one MLflow run. Only report.html, timings.csv and
accuracy_vs_training_time.png hold what the machine measured (timings/): every other table is
the same for the same params. reports/promotion.{json,md} are the promote stage's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from pathlib import Path

import joblib
import keras
import mlflow
import pandas as pd

from pipeline import UserError
from pipeline.core import tracking
from pipeline.core.config import load_params
from pipeline.core.io import read_json, staged_directory
from pipeline.core.paths import (
    BASELINE_METRICS_DIR,
    BASELINE_NAMES,
    BASELINE_TIMINGS_DIR,
    CANDIDATE_PATH,
    CURVES,
    CURVES_DIR,
    EVAL_METRICS_DIR,
    EVAL_TIMINGS_DIR,
    EXPORT_DIR,  # registers its layers
    HISTORY_DIR,
    HYBRID_METRICS_PATH,
    HYBRID_NAME,
    HYBRID_TIMINGS_PATH,
    MODEL_FILE,
    PREDICTIONS_DIR,
    REPORTS_DIR,
    SKLEARN_MODEL_FILE,
    TRAIN_METRICS_DIR,
    TRAIN_TIMINGS_DIR,
    TUNED_DIR,
)
from pipeline.core.stage import stage_app
from pipeline.reporting import behavior
from pipeline.reporting.charts import (
    accuracy_chart,
    accuracy_vs_time_chart,
    calibration_chart,
    learning_curves_chart,
    precision_recall_chart,
    roc_chart,
    word_order_chart,
)
from pipeline.reporting.comparison import (
    add_paired_tests,
    against_strongest_baseline,
    baseline_names,
    best_architecture,
    comparison_table,
    overfitting_table,
    timings_table,
    tuning_table,
)
from pipeline.reporting.promotion_page import behavior_table_markdown
from pipeline.reporting.registry import choose_candidate
from pipeline.reporting.report_page import (
    NEGATION_TARGET,
    report_markdown,
    to_html,
    word_order_markdown,
)
from pipeline.serving.text_model import predict_texts

log = logging.getLogger(__name__)



def write_charts(directory: Path, table: pd.DataFrame, timings: pd.DataFrame,
                 histories: dict[str, pd.DataFrame], train_metrics: dict[str, dict],
                 curves: dict[str, dict[str, pd.DataFrame]]) -> None:
    kept = {arch: train_metrics[arch]["best_epoch"] for arch in histories}
    by_name = table.set_index("architecture")
    accuracy_chart(table, directory / "accuracy.png")
    accuracy_vs_time_chart(table.merge(timings[["architecture", "train_seconds"]],
                                       on="architecture"),
                           directory / "accuracy_vs_training_time.png")
    for metric in ("loss", "accuracy"):
        learning_curves_chart(histories, kept, directory / f"learning_curves_{metric}.png",
                              metric)
    baselines = baseline_names(table)
    roc_chart(curves["roc"], by_name.roc_auc.to_dict(), baselines, directory / "roc.png")
    precision_recall_chart(curves["precision_recall"], baselines,
                           directory / "precision_recall.png")
    calibration_chart(curves["calibration"], by_name.brier.to_dict(), baselines,
                      directory / "calibration.png")


def report_metrics(table: pd.DataFrame) -> dict[str, float]:
    metrics = {}
    for row in table.itertuples():
        for key in ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "f1", "brier"):
            metrics[f"{row.architecture}_test_{key}"] = getattr(row, key)
        for prefix in (*(f"vs_{name}" for name in baseline_names(table)), "vs_best"):
            p_value = getattr(row, f"{prefix}_p_value")
            if not pd.isna(p_value):
                metrics[f"{row.architecture}_{prefix}_mcnemar_p"] = p_value
    return metrics




def word_order_metrics(word_order: pd.DataFrame) -> dict[str, float]:
    """Lesson 4's pass rates as MLflow metrics: <model>_word_order_<column>_pass_rate."""
    return {f"{row['model']}_word_order_{column}_pass_rate": row[column]
            for _, row in word_order.iterrows() for column in behavior.WORD_ORDER_COLUMNS
            if not pd.isna(row[column])}


def load_inputs(architectures: tuple[str, ...]) -> dict:
    names = [*architectures, HYBRID_NAME, *BASELINE_NAMES]
    expected = [*(TRAIN_METRICS_DIR / f"{a}.json" for a in architectures),
                *(HISTORY_DIR / f"{a}.csv" for a in architectures),
                *(EVAL_METRICS_DIR / f"{a}.json" for a in architectures),
                *(BASELINE_METRICS_DIR / f"{b}.json" for b in BASELINE_NAMES),
                HYBRID_METRICS_PATH, HYBRID_TIMINGS_PATH,
                *(TRAIN_TIMINGS_DIR / f"{a}.json" for a in architectures),
                *(EVAL_TIMINGS_DIR / f"{a}.json" for a in architectures),
                *(BASELINE_TIMINGS_DIR / f"{b}.json" for b in BASELINE_NAMES),
                *(PREDICTIONS_DIR / f"{n}.parquet" for n in names),
                *(CURVES_DIR / c / f"{n}.csv" for c in CURVES for n in names),
                *(TUNED_DIR / f"{a}.json" for a in architectures)]
    missing = [str(path) for path in expected if not path.exists()]
    if missing:
        raise UserError(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}: "
                        "run `dvc repro` first")
    return {
        "train": {a: read_json(TRAIN_METRICS_DIR / f"{a}.json") for a in architectures},
        "eval": {a: read_json(EVAL_METRICS_DIR / f"{a}.json") for a in architectures},
        "tuned": {a: read_json(TUNED_DIR / f"{a}.json") for a in architectures},
        "baselines": {b: read_json(BASELINE_METRICS_DIR / f"{b}.json") for b in BASELINE_NAMES},
        "stacked": {HYBRID_NAME: read_json(HYBRID_METRICS_PATH)},
        "timings": {"train": {a: read_json(TRAIN_TIMINGS_DIR / f"{a}.json")
                              for a in architectures},
                    "evaluate": {a: read_json(EVAL_TIMINGS_DIR / f"{a}.json")
                                 for a in architectures},
                    "baselines": {b: read_json(BASELINE_TIMINGS_DIR / f"{b}.json")
                                  for b in BASELINE_NAMES},
                    "stacked": {HYBRID_NAME: read_json(HYBRID_TIMINGS_PATH)}},
        "histories": {a: pd.read_csv(HISTORY_DIR / f"{a}.csv") for a in architectures},
        "predictions": {n: pd.read_parquet(PREDICTIONS_DIR / f"{n}.parquet") for n in names},
        "curves": {c: {n: pd.read_csv(CURVES_DIR / c / f"{n}.csv") for n in names}
                   for c in CURVES},
    }


def write_report(directory: Path, inputs: dict, table: pd.DataFrame,
                 overfitting: pd.DataFrame, best: str, alpha: float, n_bootstrap: int,
                 extra_markdown: str = "", word_order: str = "") -> None:
    """The tables as CSV, the charts, comparison.md and the self-contained report.html;
    `word_order` is lesson 4's section (its files: `write_word_order`), `extra_markdown` the end.

    The machine's timings go to timings.csv and report.html only: comparison.md, comparison.csv
    and overfitting.csv hold nothing that differs between two runs of the same params.
    """
    timings = timings_table(inputs["timings"]["train"], inputs["timings"]["evaluate"],
                            inputs["timings"]["baselines"], table.architecture.tolist(),
                            inputs["timings"].get("stacked"))
    tuning = tuning_table(inputs["tuned"], inputs["train"], inputs["eval"])
    table.to_csv(directory / "comparison.csv", index=False)
    tuning.to_csv(directory / "tuning.csv", index=False)
    overfitting.to_csv(directory / "overfitting.csv", index=False)
    timings.to_csv(directory / "timings.csv", index=False)
    write_charts(directory, table, timings, inputs["histories"], inputs["train"],
                 inputs["curves"])
    markdown = report_markdown(table, overfitting, best, alpha, n_bootstrap,
                               tuning=tuning, word_order=word_order) + extra_markdown
    (directory / "comparison.md").write_text(markdown, encoding="utf-8")
    page = report_markdown(table, overfitting, best, alpha, n_bootstrap, timings,
                           tuning, word_order) + extra_markdown
    (directory / "report.html").write_text(to_html(page, directory), encoding="utf-8")




def load_exported(name: str):
    """The raw-text model in exported/<name>: a scikit-learn Pipeline where it is a
    model.joblib (tfidf_logreg), else the Keras model.keras."""
    sklearn_file = EXPORT_DIR / name / SKLEARN_MODEL_FILE
    if sklearn_file.is_file():
        return joblib.load(sklearn_file)
    return keras.models.load_model(EXPORT_DIR / name / MODEL_FILE)


def predictor(model) -> behavior.Predict:
    """P(positive) for a list of reviews, from a Keras raw-text model or a scikit-learn
    classifier of raw text."""
    if isinstance(model, keras.Model):
        return lambda texts: predict_texts(model, texts)
    return lambda texts: model.predict_proba(list(texts))[:, 1]


def keras_layers(model: keras.Model):
    """Every layer of `model`, those of the models nested in it included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from keras_layers(layer)


def has_recurrent_layer(model) -> bool:
    """Whether `model` reads its words in order through a recurrent layer, at any depth (the
    hybrid's recurrent member counts); a scikit-learn model has none."""
    return isinstance(model, keras.Model) and any(
        isinstance(layer, keras.layers.RNN | keras.layers.Bidirectional)
        for layer in keras_layers(model))


def behavior_results(models: dict, threshold: float, dir_tolerance: float) -> pd.DataFrame:
    """`behavior.run_suite`'s rows for each model (name: `load_exported`'s model), with an
    `architecture` column that names it."""
    cases = behavior.load_cases()
    frames = [behavior.run_suite(predictor(model), cases, threshold, dir_tolerance)
              .assign(architecture=name) for name, model in models.items()]
    return pd.concat(frames, ignore_index=True)


def write_word_order(directory: Path, word_order: pd.DataFrame) -> None:
    """Lesson 4's files: word_order.csv (behavior.word_order_table) and word_order.png."""
    word_order.to_csv(directory / "word_order.csv", index=False)
    word_order_chart(word_order, NEGATION_TARGET, directory / "word_order.png")


def candidate_markdown(candidate: str, passed_over: dict[str, list[str]],
                       per_architecture: pd.DataFrame, ungated: Collection[str] = ()) -> str:
    """The behavioral gate, as the report decides it: the candidate it offers `promote`, the
    more accurate architectures passed over, and every model's behavioral tests (`ungated`:
    those the gate leaves out)."""
    lines = ["", "## Promotion gates", "",
             f"Candidate for champion: `{candidate}`, the most accurate architecture whose "
             "behavioral pass rates meet report.behavior_thresholds. The promote stage registers "
             "it and moves the champion alias only if it also beats the champion by "
             "report.promotion_margin: its decision is in `reports/promotion.md` and "
             "`reports/promotion.json`."]
    if passed_over:
        lines += ["", "More accurate than the candidate, but below the behavioral thresholds: "
                  + "; ".join(f"`{a}` ({', '.join(m)})" for a, m in passed_over.items()) + "."]
    return "\n".join(lines) + "\n" + behavior_table_markdown(per_architecture, ungated)


def main() -> None:
    params = load_params()
    inputs = load_inputs(params.architectures)
    alpha = round(1 - params.evaluate.confidence, 6)
    table = comparison_table(inputs["train"], inputs["eval"], inputs["baselines"],
                             inputs["stacked"])
    best = best_architecture(table)
    table = add_paired_tests(table, inputs["predictions"], best, params.evaluate.threshold, alpha)
    overfitting = overfitting_table(inputs["histories"], inputs["train"])

    # the candidates: every model but the baselines (and the hybrid, unless hybrid.candidate)
    ranked = [name for name in table[~table.is_baseline].architecture
              if name != HYBRID_NAME or params.hybrid.candidate]
    names = table.architecture.tolist()  # every model, the most accurate first
    models = {name: load_exported(name) for name in names}
    results = behavior_results(models, params.evaluate.threshold,
                               params.report.behavior_dir_tolerance)
    rates = {a: behavior.pass_rates(results[results.architecture == a]) for a in ranked}
    candidate, passed_over = choose_candidate(ranked, rates, params.report.behavior_thresholds)
    per_architecture = behavior.pass_rates_by_architecture(results, names)
    ungated = behavior.ungated_tests(results)
    word_order = behavior.word_order_table(
        results, names, baseline_names(table),
        [name for name, model in models.items() if has_recurrent_layer(model)])

    tracking.setup()
    with staged_directory(REPORTS_DIR) as tmp:
        tags = {"stage": "report", "git_commit": tracking.git_commit()}
        with mlflow.start_run(run_name="comparison-report", tags=tags):
            behavior.log_to_mlflow(results[results.architecture == candidate])
            results.to_csv(tmp / "behavior.csv", index=False)
            per_architecture.to_csv(tmp / "behavior_pass_rates.csv", index=False)
            write_word_order(tmp, word_order)
            write_report(tmp, inputs, table, overfitting, best, alpha,
                         params.evaluate.n_bootstrap,
                         candidate_markdown(candidate, passed_over, per_architecture, ungated),
                         word_order_markdown(word_order, candidate))
            (tmp / CANDIDATE_PATH.name).write_text(json.dumps({  # in rank order, unsorted
                "candidate_architecture": candidate, "behavior_pass_rates": rates[candidate],
                "ungated_tests": ungated, "passed_over": passed_over,
                "vs_strongest_baseline": against_strongest_baseline(table, candidate, alpha),
            }, indent=2) + "\n", encoding="utf-8")
            mlflow.log_artifacts(str(tmp), artifact_path="report")
            mlflow.log_metrics(report_metrics(table))
            mlflow.log_metrics(word_order_metrics(word_order))
    log.info("best: %s (%.4f); candidate for champion %s; report in %s", best,
             table[table.architecture == best].accuracy.iloc[0], candidate,
             REPORTS_DIR / "report.html")


if __name__ == "__main__":
    stage_app(__doc__, main)()
