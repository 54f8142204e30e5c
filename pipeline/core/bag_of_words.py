"""The bag-of-words baselines' library: TF-IDF's text cleaning, and NBSVM (Wang & Manning 2012,
"Baselines and Bigrams") as a Keras model that reads raw text.

Binarized word n-grams, each scaled by its naive-Bayes log-count ratio
r = log((alpha + positive counts) / |.|_1) - log((alpha + negative counts) / |.|_1), then a
liblinear logistic regression, folded into one linear layer: w . (r * x) + b = (w * r) . x + b.
The same TextVectorization layer (sparse multi-hot n-grams) turns text into features for the
fit and at serving, so the saved model scores a review exactly as the fit did.
"""

from __future__ import annotations

import re
from collections import Counter

import keras
import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from keras import layers
from sklearn.linear_model import LogisticRegression

from pipeline.core.config import NbsvmParams
from pipeline.serving import TEXT_COLUMN

BATCH = 1000  # reviews per vectorizer call
_TAG = re.compile(r"<[^>]*>")


def clean(text: str) -> str:
    """TF-IDF's preprocessor: lowercase and drop HTML tags such as IMDB's `<br />`."""
    return _TAG.sub(" ", text.lower())


@keras.saving.register_keras_serializable(package="pipeline")
def standardize_with_marks(text: tf.Tensor) -> tf.Tensor:
    """As `pipeline.core.data.standardize`, but `!` and `?` stay, each a token of its own."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"<[^>]*>", " ")
    text = tf.strings.regex_replace(text, r"['’]", "")
    text = tf.strings.regex_replace(text, r"([!?])", r" \1 ")
    return tf.strings.regex_replace(text, r"[^\p{L}\p{N}!?]+", " ")


def ngram_vocabulary(texts: list[str], max_n: int, min_df: int) -> list[str]:
    """The n-grams of at least `min_df` texts, most frequent first (ties alphabetical)."""
    frequency = Counter()
    for start in range(0, len(texts), BATCH):
        tokens = tf.strings.split(standardize_with_marks(tf.constant(texts[start:start + BATCH])))
        grams = tf.strings.ngrams(tokens, tuple(range(1, max_n + 1)), separator=" ")
        frequency.update(gram for review in grams.to_list() for gram in set(review))
    kept = [(count, gram) for gram, count in frequency.items() if count >= min_df]
    return [gram.decode() for count, gram in sorted(kept, key=lambda cg: (-cg[0], cg[1]))]


def vectorizer(vocabulary: list[str], max_n: int) -> layers.TextVectorization:
    """Text -> sparse 0/1 row over the vocabulary (column 0: out of vocabulary)."""
    return layers.TextVectorization(standardize=standardize_with_marks, ngrams=max_n,
                                    output_mode="multi_hot", sparse=True,
                                    vocabulary=vocabulary, name="ngrams")


def features(vectorize: layers.TextVectorization, texts: list[str]) -> sp.csr_matrix:
    blocks = []
    for start in range(0, len(texts), BATCH):
        rows = vectorize(tf.constant(texts[start:start + BATCH]))
        index = rows.indices.numpy()
        blocks.append(sp.csr_matrix((rows.values.numpy(), (index[:, 0], index[:, 1])),
                                    shape=tuple(rows.dense_shape.numpy())))
    return sp.vstack(blocks).tocsr()


def log_count_ratios(x: sp.spmatrix, y: np.ndarray, alpha: float) -> np.ndarray:
    y = np.asarray(y)
    positive = alpha + np.asarray(x[y == 1].sum(axis=0)).ravel()
    negative = alpha + np.asarray(x[y == 0].sum(axis=0)).ravel()
    return (np.log(positive / positive.sum()) - np.log(negative / negative.sum())).astype(
        np.float32)


def fit_nbsvm(texts: list[str], labels: np.ndarray, params: NbsvmParams,
              seed: int) -> keras.Model:
    """The fitted NBSVM as a Keras model: raw review strings in, P(positive) out."""
    vectorize = vectorizer(ngram_vocabulary(texts, params.max_n, params.min_df), params.max_n)
    x = features(vectorize, texts)
    ratios = log_count_ratios(x, labels, params.alpha)
    regression = LogisticRegression(C=params.C, solver="liblinear", random_state=seed)
    regression.fit(x @ sp.diags(ratios), labels)
    review = keras.Input(shape=(), dtype="string", name=TEXT_COLUMN)
    linear = layers.Dense(1, activation="sigmoid", name="nb_weighted")
    model = keras.Model(review, linear(vectorize(review)), name="nbsvm")
    linear.set_weights([(regression.coef_[0] * ratios).astype(np.float32).reshape(-1, 1),
                        regression.intercept_.astype(np.float32)])
    return model


class Nbsvm:
    """fit / predict_proba like a scikit-learn classifier, around `fit_nbsvm`'s Keras model."""

    def __init__(self, params: NbsvmParams, seed: int):
        self.params, self.seed, self.model = params, seed, None

    def fit(self, texts: list[str], labels: np.ndarray) -> Nbsvm:
        self.model = fit_nbsvm(texts, labels, self.params, self.seed)
        return self

    @property
    def features(self) -> int:
        return self.model.get_layer("ngrams").vocabulary_size() - 1  # less the OOV column

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        positive = np.concatenate([
            np.asarray(self.model.predict_on_batch(tf.constant(texts[start:start + BATCH])))
            .reshape(-1) for start in range(0, len(texts), BATCH)])
        return np.column_stack([1 - positive, positive])
