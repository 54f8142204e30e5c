"""The hybrid model: a recurrent network's and NBSVM's opinions of a raw review, combined by a
logistic regression over their log-odds (stacking, Wolpert 1992), in one Keras model."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops
from sklearn.linear_model import LogisticRegression

from pipeline.serving import TEXT_COLUMN

EPSILON = 1e-6  # probabilities are clipped to [EPSILON, 1 - EPSILON] before the log-odds


@keras.saving.register_keras_serializable(package="pipeline")
class LogitBlend(layers.Layer):
    """[P_1, ..., P_k] -> sigmoid(sum_i w_i * logit(P_i) + b), with fixed w and b."""

    def __init__(self, weights: list[float], bias: float, **kwargs):
        super().__init__(**kwargs)
        self.blend_weights, self.bias = [float(w) for w in weights], float(bias)

    def call(self, probabilities):
        total = self.bias
        for weight, probability in zip(self.blend_weights, probabilities, strict=True):
            total = total + weight * _logit(probability)
        return ops.sigmoid(total)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "weights": self.blend_weights, "bias": self.bias}


def _logit(probability):
    clipped = ops.clip(probability, EPSILON, 1 - EPSILON)
    return ops.log(clipped) - ops.log(1 - clipped)


def log_odds(probabilities: np.ndarray) -> np.ndarray:
    clipped = np.clip(probabilities, EPSILON, 1 - EPSILON)
    return np.log(clipped) - np.log1p(-clipped)


def fit_blend(probabilities: list[np.ndarray], labels: np.ndarray, C: float,  # noqa: N803
              seed: int) -> tuple[list[float], float]:
    """Weights and bias of the logistic regression over the members' log-odds."""
    features = np.column_stack([log_odds(p) for p in probabilities])
    regression = LogisticRegression(C=C, solver="liblinear", random_state=seed)
    regression.fit(features, labels)
    return regression.coef_[0].tolist(), float(regression.intercept_[0])


def blend(probabilities: list[np.ndarray], weights: list[float], bias: float) -> np.ndarray:
    """What LogitBlend computes, in NumPy."""
    total = bias + sum(w * log_odds(p) for w, p in zip(weights, probabilities, strict=True))
    return 1 / (1 + np.exp(-total))


def hybrid_model(members: list[keras.Model], weights: list[float], bias: float) -> keras.Model:
    """Raw review strings in, P(positive) out, through every member and the blend."""
    review = keras.Input(shape=(), dtype="string", name=TEXT_COLUMN)
    blended = LogitBlend(weights, bias, name="blend")([member(review) for member in members])
    return keras.Model(review, blended, name="hybrid")
