"""Stage `export@<architecture>`: wrap a trained model into one that reads raw review text.

The exported Keras model holds the training vocabulary and standardization (TextVectorization
with `pipeline.prepare.standardize`) and the same padding and truncation, so it answers
P(positive) for a raw string exactly as evaluation scored the prepared arrays. It is saved as
exported/<arch>/model.keras and logged to the architecture's MLflow run as a pyfunc model
that takes a DataFrame with a `review` column.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers, ops

from pipeline import UserError, run_architecture_stage, tracking
from pipeline.config import PrepareParams, load_params
from pipeline.download import REVIEWS_PATH
from pipeline.evaluate import resume_run
from pipeline.io import atomic_path
from pipeline.models import accepts_any_length
from pipeline.prepare import PREPARED_DIR, load_split, load_vocabulary, standardize
from pipeline.serving import TEXT_COLUMN, as_bad_request, served_reviews
from pipeline.train import MODEL_FILE, MODELS_DIR, RUN_FILE

log = logging.getLogger(__name__)

EXPORT_DIR = Path("exported")


@keras.saving.register_keras_serializable(package="pipeline")
class ClipAndPad(layers.Layer):
    """Post-padded token ids -> cut and padded like prepare did, to `maxlen` columns.

    With fixed_width=False (for models that mask padding) the batch is only as wide as its
    longest review, up to `maxlen`: the same predictions for far less work on short reviews.
    Those models get post-padding: the same predictions, and the mask layout cuDNN needs.
    """

    def __init__(self, maxlen: int, padding: str = "pre", truncating: str = "pre",
                 fixed_width: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.maxlen, self.padding, self.truncating = maxlen, padding, truncating
        self.fixed_width = fixed_width

    def call(self, tokens):
        tokens = ops.pad(ops.cast(tokens, "int32"), [[0, 0], [0, 1]])  # width >= 1, even if empty
        lengths = ops.sum(ops.cast(tokens != 0, "int32"), axis=1, keepdims=True)
        kept = ops.minimum(lengths, self.maxlen)
        width = self.maxlen if self.fixed_width else ops.maximum(ops.max(kept), 1)
        start = lengths - kept if self.truncating == "pre" else ops.zeros_like(lengths)
        offset = width - kept if self.padding == "pre" else ops.zeros_like(lengths)
        column = ops.expand_dims(ops.arange(width, dtype="int32"), 0)
        source = start + column - offset
        inside = (column >= offset) & (column < offset + kept)
        gathered = ops.take_along_axis(tokens, ops.clip(source, 0, ops.shape(tokens)[1] - 1),
                                       axis=1)
        return ops.where(inside, gathered, ops.zeros_like(gathered))

    def get_config(self):
        return {**super().get_config(), "maxlen": self.maxlen, "padding": self.padding,
                "truncating": self.truncating, "fixed_width": self.fixed_width}


def text_model(core: keras.Model, vocabulary: list[str], prepare: PrepareParams) -> keras.Model:
    """Raw strings in, P(positive) out: vectorizer -> clip and pad -> the trained model."""
    review = keras.Input(shape=(), dtype="string", name=TEXT_COLUMN)
    vectorizer = layers.TextVectorization(standardize=standardize, vocabulary=vocabulary,
                                          name="vectorizer")
    masked = accepts_any_length(core)  # padding placement is moot; "post" lets cuDNN run
    clip_and_pad = ClipAndPad(prepare.maxlen, "post" if masked else prepare.padding,
                              prepare.truncating, fixed_width=not masked)
    tokens = clip_and_pad(vectorizer(review))
    return keras.Model(review, core(tokens), name=f"{core.name}_text")


def predict_texts(model: keras.Model, texts: list[str], batch_size: int = 512) -> np.ndarray:
    """P(positive) per text, in the order given.

    Texts are batched in order of length, so a masked model's batches stay narrow, and scored
    with predict_on_batch, which skips `predict`'s per-call tf.data set-up (a single review
    takes milliseconds). Keras refuses NumPy `<U` arrays, hence tf.constant. Any string is
    scored, "" too: the input contract (pipeline.serving) is checked where reviews come in,
    by `pipeline.predict.score`, the pyfunc model and so HTTP.
    """
    order = np.argsort([len(text) for text in texts], kind="stable")
    probabilities = np.zeros(len(texts), dtype="float32")
    for start in range(0, len(texts), batch_size):
        rows = order[start:start + batch_size]
        batch = tf.constant([texts[i] for i in rows])
        probabilities[rows] = np.asarray(model.predict_on_batch(batch)).reshape(-1)
    return probabilities


class ReviewSentimentModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc: DataFrame with a `review` column -> DataFrame with `probability`.

    Input that breaks the contract in pipeline.serving (a null, a number, a list, an empty or
    whitespace-only review) raises an MlflowException naming the rows, which the scoring
    server answers with HTTP 400 and a JSON message; no row of that batch is scored.
    """

    def __getstate__(self):
        # MLflow may call load_context on this instance before pickling it; the Keras model
        # is an artifact loaded at serving time, never part of the pickle.
        return {}

    def load_context(self, context):
        import pipeline.export  # noqa: F401  registers the custom layers before loading
        import pipeline.models  # noqa: F401

        self.model = keras.models.load_model(context.artifacts["keras_model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        with as_bad_request():
            texts = served_reviews(model_input)
        return pd.DataFrame({"probability": predict_texts(self.model, texts)})


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
        with resume_run(architecture, MODELS_DIR / architecture / RUN_FILE):
            info = log_text_model(tmp / MODEL_FILE)
        (tmp / "model_uri.txt").write_text(info.model_uri + "\n", encoding="utf-8")
    log.info("%s: raw-text model in %s and %s", architecture, EXPORT_DIR / architecture,
             info.model_uri)


def log_text_model(keras_file: Path, name: str = "text_model"):
    """Log a saved raw-text Keras model to the active MLflow run as a pyfunc model."""
    example = pd.DataFrame({TEXT_COLUMN: ["A moving, beautifully acted film.",
                                          "Dull plot and wooden acting.<br />Avoid."]})
    package = Path(__file__).resolve().parent
    return mlflow.pyfunc.log_model(
        name=name, python_model=ReviewSentimentModel(),
        artifacts={"keras_model": str(keras_file)}, input_example=example,
        signature=_signature(), code_paths=[str(package)], pip_requirements=_requirements())


def _signature():
    """`review` in, `probability` out. The review column is typed `any`: with `string`, the
    scoring server casts a JSON null, 123 or true to the text "None", "123" or "True" before
    the model sees it, and the input contract could not refuse them."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import AnyType

    return ModelSignature(inputs=Schema([ColSpec(AnyType(), TEXT_COLUMN)]),
                          outputs=Schema([ColSpec(DataType.float, "probability")]))


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


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in
            ("tensorflow-cpu", "keras", "mlflow", "pandas", "numpy")]


if __name__ == "__main__":
    run_architecture_stage("export", main)
