"""Stage `baseline@<name>`: a classic bag-of-words reference, fit on exactly the training part
of prepare's split and scored like the networks. Two are built (params.yaml `baselines`):

- `tfidf_logreg`: TF-IDF over word uni- and bigrams, then logistic regression;
- `nbsvm`: NBSVM (Wang & Manning 2012, "Baselines and Bigrams") in its logistic-regression form
  (pipeline/core/bag_of_words.py): binarized word n-grams, each scaled by its naive-Bayes log-count
  ratio, then liblinear logistic regression, folded into a Keras model that reads raw text.
  Its tokens are the networks' (pipeline.core.data.standardize) plus `!` and `?`.

Reads data/validated/reviews.parquet. Writes metrics/baseline/<name>.json (test metrics in
evaluate's format, plus validation metrics), timings/baseline/<name>.json (fit time and
inference time per raw review, on this machine), predictions/<name>.parquet and
plots/<curve>/<name>.csv, and the fitted model, which reads raw text, to exported/<name>/
(NBSVM as model.keras, which the hybrid stage builds on; TF-IDF as a scikit-learn
model.joblib); logs them to an MLflow run tagged stage=baseline.
"""

from __future__ import annotations

import logging
import time

import joblib
import mlflow
import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline import UserError
from pipeline.core import tracking
from pipeline.core.bag_of_words import Nbsvm, clean
from pipeline.core.config import NbsvmParams, TfidfParams, load_params
from pipeline.core.data import new_reviews, split_reviews
from pipeline.core.io import atomic_path, write_json
from pipeline.core.metrics import (
    classification_metrics,
    log_to_mlflow,
    predictions_frame,
    score,
    write_predictions_and_curves,
)
from pipeline.core.paths import (
    BASELINE_METRICS_DIR,
    BASELINE_NAMES,
    BASELINE_TIMINGS_DIR,
    EXPORT_DIR,
    MODEL_FILE,
    SKLEARN_MODEL_FILE,
    VALIDATED_PATH,
)
from pipeline.core.stage import architecture_stage_app

log = logging.getLogger(__name__)

INPUT_PATH = VALIDATED_PATH  # the same input as prepare

def build_tfidf_logreg(params: TfidfParams, seed: int) -> Pipeline:
    return Pipeline([
        ("tfidf", TfidfVectorizer(preprocessor=clean, ngram_range=(1, 2), sublinear_tf=True,
                                  min_df=params.min_df, max_features=params.max_features,
                                  dtype=np.float32)),
        ("logreg", LogisticRegression(C=params.C, solver="liblinear", random_state=seed)),
    ])


def build_nbsvm(params: NbsvmParams, seed: int) -> Nbsvm:
    return Nbsvm(params, seed)


BUILDERS = {"tfidf_logreg": build_tfidf_logreg, "nbsvm": build_nbsvm}
assert tuple(BUILDERS) == BASELINE_NAMES


def build_baseline(name: str, params, seed: int) -> Pipeline | Nbsvm:
    """The unfitted baseline `name` (a key of params.yaml `baselines`) with its params."""
    if name not in BUILDERS:
        raise UserError(f"unknown baseline {name!r}: known are {', '.join(BUILDERS)}")
    return BUILDERS[name](params, seed)


def feature_count(model: Pipeline | Nbsvm) -> int:
    return model.features if isinstance(model, Nbsvm) else len(model.steps[0][1].vocabulary_)


def fit_and_predict(model: Pipeline | Nbsvm, splits: dict[str, pd.DataFrame]) -> dict:
    """Fit on splits['train']; P(positive) for val and test, with the seconds each step took."""
    started = time.perf_counter()
    model.fit(splits["train"].text.tolist(), splits["train"].label.to_numpy())
    fitted = time.perf_counter()
    val = model.predict_proba(splits["val"].text.tolist())[:, 1]
    predicting = time.perf_counter()
    test = model.predict_proba(splits["test"].text.tolist())[:, 1]
    return {"val": val, "test": test, "fit_seconds": fitted - started,
            "test_seconds": time.perf_counter() - predicting}


def main(name: str) -> None:
    params = load_params()
    if not INPUT_PATH.exists():
        raise UserError(f"{INPUT_PATH} not found: run `dvc repro validate` first")
    baseline_params = getattr(params.baselines, name, None)
    model = build_baseline(name, baseline_params, params.seed)  # refuses an unknown name
    splits = split_reviews(pd.read_parquet(INPUT_PATH), params.prepare.val_fraction,
                           params.seed, new_reviews(params.incoming.use))
    result = fit_and_predict(model, splits)
    test = splits["test"]
    scores, curves = score(test.label.to_numpy(), result["test"], params.evaluate, params.seed)
    features = feature_count(model)
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
    with mlflow.start_run(run_name=name, tags={"stage": "baseline", "model": name,
                                               "git_commit": tracking.git_commit()}):
        mlflow.log_params({f"baselines.{name}.{k}": v for k, v in vars(baseline_params).items()})
        mlflow.log_metrics({"train_seconds": timings["train_seconds"],
                            "train_samples_per_second": timings["train_samples_per_second"],
                            "test_predict_ms_per_review": timings["predict_ms_per_review"],
                            "features": features,
                            "val_accuracy": summary["validation"]["accuracy"]})
        log_to_mlflow(scores, curves)
        mlflow.log_dict(summary, f"evaluation/{name}.json")
    write_predictions_and_curves(
        name, predictions_frame(test.id.to_numpy(), test.label, result["test"]), curves)
    with atomic_path(EXPORT_DIR / name) as tmp:
        tmp.mkdir()
        if isinstance(model, Nbsvm):
            model.model.save(tmp / MODEL_FILE)
        else:
            joblib.dump(model, tmp / SKLEARN_MODEL_FILE)
    write_json(BASELINE_METRICS_DIR / f"{name}.json", summary)
    write_json(BASELINE_TIMINGS_DIR / f"{name}.json", timings)
    log.info("%s: val accuracy %.4f, test accuracy %.4f, fit %.1f s", name,
             summary["validation"]["accuracy"], summary["accuracy"], timings["train_seconds"])


if __name__ == "__main__":
    architecture_stage_app(__doc__, main, target_help="A key of params.yaml's `baselines`: "
                           f"{', '.join(BASELINE_NAMES)}.")()
