"""Stage `hybrid`: a recurrent network and NBSVM in one model that reads raw text.

The two members are the raw-text models that export@<hybrid.recurrent> and baseline@nbsvm
wrote, both fit on the training part of prepare's split only. A logistic regression over their
log-odds, fitted on the validation reviews only (stacking), decides how much each one counts;
the test reviews decide nothing. The combined Keras model (pipeline/core/stacking.py) is scored
on the test set like every other model and competes for champion.

Reads exported/<recurrent>/model.keras, exported/nbsvm/model.keras,
data/validated/reviews.parquet and the members' training times (timings/train/<recurrent>.json,
timings/baseline/nbsvm.json: the hybrid's training time is theirs plus the blend's). Writes
exported/hybrid/model.keras and model_uri.txt (the pyfunc model logged to an MLflow run tagged
stage=hybrid), metrics/hybrid.json (test metrics in evaluate's format, the weights, validation
accuracy), timings/hybrid.json, predictions/hybrid.parquet and plots/<curve>/hybrid.csv.
"""

from __future__ import annotations

import logging
import time

import keras
import mlflow
import pandas as pd

from pipeline import UserError
from pipeline.core import tracking
from pipeline.core.config import load_params
from pipeline.core.data import split_reviews
from pipeline.core.io import atomic_path, read_json, write_json
from pipeline.core.metrics import (
    classification_metrics,
    log_to_mlflow,
    predictions_frame,
    score,
    write_predictions_and_curves,
)
from pipeline.core.paths import (
    BASELINE_TIMINGS_DIR,
    EXPORT_DIR,
    HYBRID_METRICS_PATH,
    HYBRID_NAME,
    HYBRID_TIMINGS_PATH,
    MODEL_FILE,
    TRAIN_TIMINGS_DIR,
    VALIDATED_PATH,
)
from pipeline.core.stacking import blend, fit_blend, hybrid_model
from pipeline.core.stage import stage_app
from pipeline.serving.text_model import log_text_model, predict_texts

log = logging.getLogger(__name__)

NGRAM_MEMBER = "nbsvm"


def load_member(name: str, stage: str) -> keras.Model:
    path = EXPORT_DIR / name / MODEL_FILE
    if not path.exists():
        raise UserError(f"{path} not found: run `dvc repro {stage}`")
    return keras.models.load_model(path)


def main() -> None:
    params = load_params()
    recurrent = params.hybrid.recurrent
    members = [load_member(recurrent, f"export@{recurrent}"),
               load_member(NGRAM_MEMBER, f"baseline@{NGRAM_MEMBER}")]
    if not VALIDATED_PATH.exists():
        raise UserError(f"{VALIDATED_PATH} not found: run `dvc repro validate` first")
    splits = split_reviews(pd.read_parquet(VALIDATED_PATH), params.prepare.val_fraction,
                           params.seed)
    val, test = splits["val"], splits["test"]

    started = time.perf_counter()
    val_members = [predict_texts(member, val.text.tolist()) for member in members]
    weights, bias = fit_blend(val_members, val.label.to_numpy(), params.hybrid.C, params.seed)
    model = hybrid_model(members, weights, bias)
    fitted = time.perf_counter()
    probability = predict_texts(model, test.text.tolist())
    test_seconds = time.perf_counter() - fitted

    scores, curves = score(test.label.to_numpy(), probability, params.evaluate, params.seed)
    summary = {
        **scores,
        "members": [recurrent, NGRAM_MEMBER],
        "weights": dict(zip([recurrent, NGRAM_MEMBER], [round(w, 6) for w in weights],
                            strict=True)),
        "bias": round(bias, 6),
        "parameters": int(sum(member.count_params() for member in members) + len(weights) + 1),
        "validation": classification_metrics(val.label.to_numpy(),
                                             blend(val_members, weights, bias),
                                             params.evaluate.threshold),
    }
    members_seconds = (read_json(TRAIN_TIMINGS_DIR / f"{recurrent}.json")["train_seconds"]
                       + read_json(BASELINE_TIMINGS_DIR / f"{NGRAM_MEMBER}.json")["train_seconds"])
    timings = {"train_seconds": round(members_seconds + fitted - started, 1),
               "blend_seconds": round(fitted - started, 1),
               "predict_ms_per_review": round(1000 * test_seconds / len(test), 3)}
    export(model, summary, scores, curves, params)
    write_predictions_and_curves(
        HYBRID_NAME, predictions_frame(test.id.to_numpy(), test.label, probability), curves)
    write_json(HYBRID_METRICS_PATH, summary)
    write_json(HYBRID_TIMINGS_PATH, timings)
    log.info("%s = %s: weights %s, bias %.3f; val accuracy %.4f, test accuracy %.4f",
             HYBRID_NAME, " + ".join(summary["members"]), summary["weights"], bias,
             summary["validation"]["accuracy"], summary["accuracy"])


def export(model: keras.Model, summary: dict, scores: dict, curves: dict, params) -> None:
    """exported/hybrid/ (the Keras model and the logged pyfunc's URI), and the MLflow run."""
    tracking.setup()
    tags = {"stage": "hybrid", "model": HYBRID_NAME, "git_commit": tracking.git_commit(),
            "data_hash": tracking.data_hash(VALIDATED_PATH.parent)}
    with atomic_path(EXPORT_DIR / HYBRID_NAME) as tmp:
        tmp.mkdir()
        model.save(tmp / MODEL_FILE)
        with mlflow.start_run(run_name=HYBRID_NAME, tags=tags):
            mlflow.log_params({"hybrid.recurrent": params.hybrid.recurrent,
                               "hybrid.C": params.hybrid.C,
                               **{f"weight.{k}": v for k, v in summary["weights"].items()},
                               "bias": summary["bias"]})
            mlflow.log_metric("val_accuracy", summary["validation"]["accuracy"])
            log_to_mlflow(scores, curves)
            info = log_text_model(tmp / MODEL_FILE)
        (tmp / "model_uri.txt").write_text(info.model_uri + "\n", encoding="utf-8")


if __name__ == "__main__":
    stage_app(__doc__, main)()
