"""Stage `train@<architecture>`: fit one architecture (train.schedule), tracked in MLflow.

Hyperparameters: models.<arch> in params.yaml, overridden by the tune stage's winners in
tuned/<arch>.json (see `final_model_params`).
Writes models/<arch>/model.keras (the kept epoch's weights), models/<arch>/run.json (the MLflow
run that evaluate continues), plots/history/<arch>.csv, metrics/train/<arch>.json (what training
scored) and timings/train/<arch>.json (how long it took here).
"""

from __future__ import annotations

import logging

import keras
import mlflow

from pipeline.core import tracking
from pipeline.core.config import load_params
from pipeline.core.data import load_split
from pipeline.core.io import atomic_path, write_json
from pipeline.core.models import build_model
from pipeline.core.paths import (
    HISTORY_DIR,
    MODEL_FILE,
    MODELS_DIR,
    PREPARED_DIR,
    RUN_FILE,
    TRAIN_METRICS_DIR,
    TRAIN_TIMINGS_DIR,
)
from pipeline.core.stage import architecture_stage_app
from pipeline.core.training import (
    compile_model,
    final_model_params,
    fit,
    flat_params,
    start_embedding,
    summarize,
    training_timings,
)

log = logging.getLogger(__name__)

























def main(architecture: str) -> None:
    params = load_params()
    model_params, tuned = final_model_params(params, architecture)
    keras.utils.set_random_seed(params.seed)
    data = {split: load_split(split) for split in ("train", "val")}
    model = build_model(architecture, params.prepare.vocab_size, params.prepare.maxlen,
                        **model_params.hyperparameters)
    start_embedding(model, architecture, params)
    compile_model(model, model_params.learning_rate, params.train, model_params.optimizer)

    tracking.setup()
    tags = {**tracking.reproducibility_tags(architecture, PREPARED_DIR), "tuned": str(tuned)}
    with mlflow.start_run(run_name=architecture, tags=tags) as run:
        mlflow.log_params(flat_params(params, architecture, model_params))
        history, seconds = fit(model, data, model_params, params.train, params.prepare.padding,
                               params.seed, callbacks=[mlflow.keras.MlflowCallback()])
        summary = summarize(history, model, params.train)
        timings = training_timings(history, seconds, len(data["train"][1]))
        mlflow.log_metrics({**summary, **timings})
        with atomic_path(MODELS_DIR / architecture) as tmp:
            tmp.mkdir()
            model.save(tmp / MODEL_FILE)
            write_json(tmp / RUN_FILE, {"run_id": run.info.run_id,
                                        "tracking_uri": mlflow.get_tracking_uri()})
            mlflow.log_artifact(str(tmp / MODEL_FILE), artifact_path="model")
    with atomic_path(HISTORY_DIR / f"{architecture}.csv") as tmp:
        history.round(5).to_csv(tmp, index=False)
    write_json(TRAIN_METRICS_DIR / f"{architecture}.json", summary)
    write_json(TRAIN_TIMINGS_DIR / f"{architecture}.json", timings)
    log.info("%s: %s, %s", architecture, summary, timings)


if __name__ == "__main__":
    architecture_stage_app(__doc__, main)()
