"""Stage `export@<architecture>`: wrap a trained model into one that reads raw review text.

The exported Keras model holds the training vocabulary and standardization (TextVectorization
with `pipeline.core.data.standardize`) and the same padding and truncation, so it answers
P(positive) for a raw string exactly as evaluation scored the prepared arrays. It is saved as
exported/<arch>/model.keras and logged to the architecture's MLflow run as a pyfunc model
that takes a DataFrame with a `review` column.

Reads models/<arch>/model.keras, data/prepared (vocabulary, test split) and
data/reviews.parquet (to check the raw-text model against the prepared arrays). Writes
exported/<arch>/model.keras and exported/<arch>/model_uri.txt (the logged pyfunc model).
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import pandas as pd

from pipeline import UserError
from pipeline.core import tracking
from pipeline.core.config import load_params
from pipeline.core.data import load_split, load_vocabulary
from pipeline.core.io import atomic_path
from pipeline.core.paths import (
    EXPORT_DIR,
    MODEL_FILE,
    MODELS_DIR,
    PREPARED_DIR,
    REVIEWS_PATH,
    RUN_FILE,
)
from pipeline.core.stage import architecture_stage_app
from pipeline.core.tracking import resume_training_run
from pipeline.serving.text_model import (  # noqa: F401  ReviewSentimentModel: see below
    ClipAndPad,
    ReviewSentimentModel,
    log_text_model,
    predict_texts,
    text_model,
)

log = logging.getLogger(__name__)

# Models registered before the raw-text model moved to pipeline/serving/text_model.py name
# their pyfunc class pipeline.export.ReviewSentimentModel, and their load_context imports
# pipeline.export to register ClipAndPad: both names must keep resolving here.


def main(architecture: str) -> None:
    params = load_params()
    params.model(architecture)
    core_path = MODELS_DIR / architecture / MODEL_FILE
    if not core_path.exists():
        raise UserError(f"{core_path} not found: run `dvc repro train@{architecture}`")
    core = keras.models.load_model(core_path)
    model = text_model(core, load_vocabulary(), params.prepare)
    check_against_prepared(model, core)

    tracking.setup()
    with atomic_path(EXPORT_DIR / architecture) as tmp:
        tmp.mkdir()
        model.save(tmp / MODEL_FILE)
        with resume_training_run(architecture, MODELS_DIR / architecture / RUN_FILE):
            info = log_text_model(tmp / MODEL_FILE)
        (tmp / "model_uri.txt").write_text(info.model_uri + "\n", encoding="utf-8")
    log.info("%s: raw-text model in %s and %s", architecture, EXPORT_DIR / architecture,
             info.model_uri)


def check_against_prepared(model: keras.Model, core: keras.Model, n: int = 64) -> None:
    """The text model must score raw reviews as the core model scored the prepared arrays."""
    reviews = pd.read_parquet(REVIEWS_PATH)
    test = reviews[reviews.split == "test"].reset_index(drop=True)
    x_test, _ = load_split("test", PREPARED_DIR)
    rows = np.linspace(0, len(test) - 1, min(n, len(test))).astype(int)
    expected = core.predict(x_test[rows], verbose=0).reshape(-1)
    actual = predict_texts(model, test.text[rows].tolist())
    worst = float(np.abs(expected - actual).max())
    if worst > 1e-4:
        raise UserError(f"exported model disagrees with the trained one by {worst:.2g}")


if __name__ == "__main__":
    architecture_stage_app(__doc__, main)()
