"""Stage `evaluate@<architecture>`: score the trained model on the held-out test set.

Writes metrics/eval/<arch>.json (metrics with bootstrap confidence intervals, Brier score),
timings/evaluate/<arch>.json (inference time on this machine), predictions/<arch>.parquet
(id, label, probability per test review, for the report's paired tests) and the curve data
plots/{roc,precision_recall,calibration}/<arch>.csv, and logs the same to the architecture's
MLflow run. The baseline stage scores itself with the same functions, so every model is
measured the same way.
"""

from __future__ import annotations

import logging
import time

import keras
import mlflow

from pipeline import UserError
from pipeline.core import tracking
from pipeline.core.batching import predict_proba
from pipeline.core.config import load_params
from pipeline.core.data import load_split, load_test_ids
from pipeline.core.io import write_json
from pipeline.core.metrics import (
    log_to_mlflow,
    predictions_frame,
    score,
    write_predictions_and_curves,
)
from pipeline.core.paths import (
    EVAL_METRICS_DIR,
    EVAL_TIMINGS_DIR,
    MODEL_FILE,
    MODELS_DIR,
    RUN_FILE,
)
from pipeline.core.stage import architecture_stage_app
from pipeline.core.tracking import resume_training_run

log = logging.getLogger(__name__)





























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
    scores, curves = score(y_test, probability, params.evaluate, params.seed)
    timings = {"predict_ms_per_review": round(1000 * seconds / len(y_test), 3)}

    tracking.setup()
    with resume_training_run(architecture, model_dir / RUN_FILE):
        log_to_mlflow(scores, curves)
        mlflow.log_metrics({f"test_{k}": v for k, v in timings.items()})
    write_predictions_and_curves(architecture,
                                 predictions_frame(load_test_ids(), y_test, probability), curves)
    write_json(EVAL_METRICS_DIR / f"{architecture}.json", scores)
    write_json(EVAL_TIMINGS_DIR / f"{architecture}.json", timings)
    log.info("%s test: %s, %s", architecture, scores, timings)


if __name__ == "__main__":
    architecture_stage_app(__doc__, main)()
