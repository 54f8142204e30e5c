"""Stage `baseline`: the classic reference, TF-IDF over word uni- and bigrams with logistic
regression, fit on exactly the training part of prepare's split and scored like the networks.

Writes metrics/baseline.json (test metrics in evaluate's format, plus validation metrics),
timings/baseline.json (fit time and inference time per raw review, on this machine),
predictions/tfidf_logreg.parquet and plots/<curve>/tfidf_logreg.csv; logs them to an MLflow run
tagged stage=baseline.
"""

from __future__ import annotations

import logging
import re
import time

import mlflow
import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline import UserError
from pipeline.core import tracking
from pipeline.core.config import BaselineParams, load_params
from pipeline.core.data import split_reviews
from pipeline.core.io import write_json
from pipeline.core.metrics import (
    classification_metrics,
    log_to_mlflow,
    predictions_frame,
    score,
    write_predictions_and_curves,
)
from pipeline.core.paths import (
    BASELINE_METRICS_PATH,
    BASELINE_NAME,
    BASELINE_TIMINGS_PATH,
    VALIDATED_PATH,
)
from pipeline.core.stage import stage_app

log = logging.getLogger(__name__)

INPUT_PATH = VALIDATED_PATH  # the same input as prepare

_TAG = re.compile(r"<[^>]*>")


def clean(text: str) -> str:
    """Lowercase and drop HTML tags such as IMDB's `<br />`."""
    return _TAG.sub(" ", text.lower())


def build_baseline(params: BaselineParams, seed: int) -> Pipeline:
    return Pipeline([
        ("tfidf", TfidfVectorizer(preprocessor=clean, ngram_range=(1, 2), sublinear_tf=True,
                                  min_df=params.min_df, max_features=params.max_features,
                                  dtype=np.float32)),
        ("logreg", LogisticRegression(C=params.C, solver="liblinear", random_state=seed)),
    ])


def fit_and_predict(model: Pipeline, splits: dict[str, pd.DataFrame]) -> dict:
    """Fit on splits['train']; P(positive) for val and test, with the seconds each step took."""
    started = time.perf_counter()
    model.fit(splits["train"].text.tolist(), splits["train"].label.to_numpy())
    fitted = time.perf_counter()
    val = model.predict_proba(splits["val"].text.tolist())[:, 1]
    predicting = time.perf_counter()
    test = model.predict_proba(splits["test"].text.tolist())[:, 1]
    return {"val": val, "test": test, "fit_seconds": fitted - started,
            "test_seconds": time.perf_counter() - predicting}


def main() -> None:
    params = load_params()
    if not INPUT_PATH.exists():
        raise UserError(f"{INPUT_PATH} not found: run `dvc repro validate` first")
    splits = split_reviews(pd.read_parquet(INPUT_PATH), params.prepare.val_fraction,
                           params.seed)
    model = build_baseline(params.baseline, params.seed)
    result = fit_and_predict(model, splits)
    test = splits["test"]
    scores, curves = score(test.label.to_numpy(), result["test"], params.evaluate, params.seed)
    features = len(model.named_steps["tfidf"].vocabulary_)
    timings = {
        "train_seconds": round(result["fit_seconds"], 1),
        "train_samples_per_second": round(len(splits["train"]) / result["fit_seconds"], 1),
        "predict_ms_per_review": round(1000 * result["test_seconds"] / len(test), 3),
    }
    summary = {
        **scores,
        "features": features,
        "parameters": features + 1,
        "validation": classification_metrics(splits["val"].label.to_numpy(), result["val"],
                                             params.evaluate.threshold),
    }

    tracking.setup()
    with mlflow.start_run(run_name=BASELINE_NAME,
                          tags={"stage": "baseline", "model": BASELINE_NAME,
                                "git_commit": tracking.git_commit()}):
        mlflow.log_params({f"baseline.{k}": v for k, v in vars(params.baseline).items()})
        mlflow.log_metrics({"train_seconds": timings["train_seconds"],
                            "train_samples_per_second": timings["train_samples_per_second"],
                            "test_predict_ms_per_review": timings["predict_ms_per_review"],
                            "features": features,
                            "val_accuracy": summary["validation"]["accuracy"]})
        log_to_mlflow(scores, curves)
        mlflow.log_dict(summary, "evaluation/baseline.json")
    write_predictions_and_curves(
        BASELINE_NAME, predictions_frame(test.id.to_numpy(), test.label, result["test"]), curves)
    write_json(BASELINE_METRICS_PATH, summary)
    write_json(BASELINE_TIMINGS_PATH, timings)
    log.info("%s: val accuracy %.4f, test accuracy %.4f, fit %.1f s", BASELINE_NAME,
             summary["validation"]["accuracy"], summary["accuracy"], timings["train_seconds"])


if __name__ == "__main__":
    stage_app(__doc__, main)()
