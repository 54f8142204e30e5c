"""Stage `evaluate@<architecture>`: score the trained model on the held-out test set.

Writes metrics/eval/<arch>.json and logs the same figures to the architecture's MLflow run.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import keras
import mlflow
import numpy as np
from sklearn import metrics as skm

from pipeline import UserError, run_stage, tracking
from pipeline.batching import predict_proba
from pipeline.config import load_params
from pipeline.io import read_json, write_json
from pipeline.prepare import load_split
from pipeline.train import MODEL_FILE, MODELS_DIR, RUN_FILE

log = logging.getLogger(__name__)

EVAL_METRICS_DIR = Path("metrics/eval")


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
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def resume_run(architecture: str, run_file) -> mlflow.ActiveRun:
    """Continue the training run; start a fresh one if that run is not in this tracking store."""
    run_id = read_json(run_file)["run_id"]
    try:
        return mlflow.start_run(run_id=run_id)
    except mlflow.exceptions.MlflowException:
        log.warning("training run %s is not in %s; logging the evaluation to a new run",
                    run_id, mlflow.get_tracking_uri())
        return mlflow.start_run(run_name=architecture, tags={"architecture": architecture,
                                                            "training_run_id": run_id})


def main(architecture: str) -> None:
    params = load_params()
    params.model(architecture)  # an unknown architecture fails here, naming the choices
    model_dir = MODELS_DIR / architecture
    if not (model_dir / MODEL_FILE).exists():
        raise UserError(f"{model_dir / MODEL_FILE} not found: run `dvc repro train@{architecture}`")
    model = keras.models.load_model(model_dir / MODEL_FILE)
    x_test, y_test = load_split("test")
    started = time.perf_counter()
    probability = predict_proba(model, x_test, params.evaluate.batch_size,
                                params.train.bucket_width, params.prepare.padding)
    seconds = time.perf_counter() - started
    scores = classification_metrics(y_test, probability, params.evaluate.threshold)
    scores["predict_ms_per_review"] = round(1000 * seconds / len(y_test), 3)

    tracking.setup()
    with resume_run(architecture, model_dir / RUN_FILE):
        mlflow.log_metrics({f"test_{k}": v for k, v in scores.items() if not isinstance(v, dict)})
        mlflow.log_dict(scores, "evaluation/test_metrics.json")
    write_json(EVAL_METRICS_DIR / f"{architecture}.json", scores)
    log.info("%s test: %s", architecture, scores)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m pipeline.evaluate <architecture>")
    run_stage(lambda: main(sys.argv[1]))
