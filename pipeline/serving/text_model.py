"""The raw-text model: review strings in, P(positive) out, as Keras (`text_model`) and as the
MLflow pyfunc model that the registry serves (`ReviewSentimentModel`)."""

from __future__ import annotations

from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers, ops

import pipeline.core.bag_of_words  # noqa: F401  registers NBSVM's standardization (the hybrid)
import pipeline.core.stacking  # noqa: F401  registers the hybrid's blend
from pipeline.core.config import PrepareParams
from pipeline.core.data import standardize
from pipeline.core.models import accepts_any_length
from pipeline.serving import TEXT_COLUMN, as_bad_request, served_reviews


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
    by `pipeline.serving.predict.score`, the pyfunc model and so HTTP.
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
        import pipeline.core.models  # noqa: F401  registers the custom layers before loading

        self.model = keras.models.load_model(context.artifacts["keras_model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        with as_bad_request():
            texts = served_reviews(model_input)
        return pd.DataFrame({"probability": predict_texts(self.model, texts)})


def log_text_model(keras_file: Path, name: str = "text_model"):
    """Log a saved raw-text Keras model to the active MLflow run as a pyfunc model."""
    example = pd.DataFrame({TEXT_COLUMN: ["A moving, beautifully acted film.",
                                          "Dull plot and wooden acting.<br />Avoid."]})
    package = Path(__file__).resolve().parents[1]  # the whole pipeline package
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


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in
            ("tensorflow-cpu", "keras", "mlflow", "pandas", "numpy")]
