"""Levers for a recurrent model that beats bag-of-words, each measured on the test split.

    python benchmarks/recurrent_levers.py                       # after `dvc repro`, from the root
    python benchmarks/recurrent_levers.py --variants max maxmean

Every variant is a GRU over the token embeddings whose states are pooled (attention, max, mean or
max and mean), trained as the train stage trains attention_rnn (its tuned hyperparameters, the
cosine schedule, the seed, length-bucketed batches) and scored on the 25,000 test reviews: alone,
stacked with NBSVM on validation predictions as the hybrid stage does, and on the behavioral
suite's negation cases. The levers, one per variant name (see VARIANTS): the pooling, a word2vec
start (gensim, as benchmarks/unlabelled_pretraining.py learns it from the fit, validation and
unlabelled reviews), a language-model start (the embedding and GRU of a next-word model trained
on those same reviews, as Dai & Le 2015 pretrain), whole reviews instead of their last 500
tokens, a bidirectional GRU, adversarial perturbation of the embeddings (Miyato et al. 2017) and
the average of three seeds.
Writes benchmarks/results/recurrent_levers.{csv,md}, after each variant; the rows of variants
already there and not run again are kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.training_throughput import write_results  # noqa: E402
from benchmarks.unlabelled_pretraining import embedding_matrix, word_vectors  # noqa: E402
from pipeline.core.batching import bucket_batches, predict_proba, review_lengths  # noqa: E402
from pipeline.core.config import load_params  # noqa: E402
from pipeline.core.data import PAD, load_split, load_vocabulary, split_reviews  # noqa: E402
from pipeline.core.io import read_json  # noqa: E402
from pipeline.core.models import AttentionPooling  # noqa: E402
from pipeline.core.paths import (  # noqa: E402
    EVAL_METRICS_DIR,
    EXPORT_DIR,
    MODEL_FILE,
    UNLABELLED_PATH,
    VALIDATED_PATH,
)
from pipeline.core.stacking import blend, fit_blend  # noqa: E402
from pipeline.core.training import compile_model, final_model_params, fit  # noqa: E402
from pipeline.prepare import encode, pad  # noqa: E402
from pipeline.reporting.behavior import NEGATION_TESTS, load_cases, run_suite  # noqa: E402
from pipeline.serving.text_model import predict_texts  # noqa: E402

OUT = Path("benchmarks/results/recurrent_levers")

# name -> (pooling, start: random, word2vec or lm, whole reviews, bidirectional,
#          adversarial epsilon, seeds)
VARIANTS = {
    "attention": ("attention", "random", False, False, 0.0, 1),
    "max": ("max", "random", False, False, 0.0, 1),
    "mean": ("mean", "random", False, False, 0.0, 1),
    "maxmean": ("maxmean", "random", False, False, 0.0, 1),
    "attention_w2v": ("attention", "word2vec", False, False, 0.0, 1),
    "attention_lm": ("attention", "lm", False, False, 0.0, 1),
    "maxmean_w2v": ("maxmean", "word2vec", False, False, 0.0, 1),
    "maxmean_w2v_whole": ("maxmean", "word2vec", True, False, 0.0, 1),
    "bi_maxmean_w2v": ("maxmean", "word2vec", False, True, 0.0, 1),
    "maxmean_w2v_adv": ("maxmean", "word2vec", False, False, 1.0, 1),
    "attention_w2v_adv": ("attention", "word2vec", False, False, 1.0, 1),
    "attention_lm_adv": ("attention", "lm", False, False, 1.0, 1),
    "attention_3seeds": ("attention", "random", False, False, 0.0, 3),
    "maxmean_w2v_3seeds": ("maxmean", "word2vec", False, False, 0.0, 3),
}
LM = {"epochs": 2, "batch_size": 128, "sampled": 512, "learning_rate": 1e-3}


class MaskedPooling(layers.Layer):
    """Max or mean of the states over a review's own timesteps (padding left out)."""

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.mode, self.supports_masking = mode, True

    def call(self, states, mask=None):
        mask = keras.ops.ones(keras.ops.shape(states)[:2], "bool") if mask is None else mask
        inside = keras.ops.expand_dims(keras.ops.cast(mask, states.dtype), -1)
        if self.mode == "max":
            return keras.ops.max(states + (inside - 1.0) * 1e9, axis=1)
        return keras.ops.sum(states * inside, axis=1) / keras.ops.maximum(
            keras.ops.sum(inside, axis=1), 1.0)

    def compute_mask(self, inputs, mask=None):
        return None


def body(dim: int, units: int, dropout: float, pooling: str, bidirectional: bool):
    """(embedded tokens, mask) -> P(positive): the recurrent layer and its pooling."""
    embedded = keras.Input((None, dim), name="embedded")
    mask = keras.Input((None,), dtype="bool", name="mask")
    recurrent = layers.GRU(units, dropout=dropout, return_sequences=True)
    if bidirectional:
        recurrent = layers.Bidirectional(recurrent)
    states = recurrent(embedded, mask=mask)
    if pooling == "attention":
        features = AttentionPooling()(states, mask=mask)
    elif pooling == "maxmean":
        features = layers.Concatenate()([MaskedPooling("max")(states, mask=mask),
                                         MaskedPooling("mean")(states, mask=mask)])
    else:
        features = MaskedPooling(pooling)(states, mask=mask)
    probability = layers.Dense(1, activation="sigmoid")(features)
    return keras.Model([embedded, mask], probability)


class PooledRNN(keras.Model):
    """Embedding -> body; with epsilon > 0, each step also learns from the embeddings moved by
    epsilon along the loss gradient (L2-normalized per review), as Miyato et al. (2017) do."""

    def __init__(self, vocab_size, dim, units, dropout, pooling, bidirectional, epsilon=0.0):
        tokens = keras.Input((None,), dtype="int32", name="tokens")
        embedding = layers.Embedding(vocab_size, dim, name="embedding")
        inner = body(dim, units, dropout, pooling, bidirectional)
        super().__init__(tokens, inner([embedding(tokens), keras.ops.not_equal(tokens, 0)]))
        self.embedder, self.inner, self.epsilon = embedding, inner, epsilon

    def train_step(self, data):
        tokens, labels = data
        mask = tokens != 0
        loss_fn = keras.losses.BinaryCrossentropy()
        with tf.GradientTape() as tape:
            with tf.GradientTape() as inner:
                embedded = self.embedder(tokens)
                inner.watch(embedded)
                predicted = self.inner([embedded, mask], training=True)
                loss = loss_fn(labels, predicted)
            total = loss
            if self.epsilon:
                gradient = tf.stop_gradient(inner.gradient(loss, embedded))
                norm = tf.sqrt(tf.reduce_sum(gradient ** 2, axis=[1, 2], keepdims=True)) + 1e-12
                moved = self.inner([embedded + self.epsilon * gradient / norm, mask],
                                  training=True)
                total = loss + loss_fn(labels, moved)
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables,
                                           strict=True))
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(labels, predicted)
        return {m.name: m.result() for m in self.metrics}


def whole_reviews(splits: dict, vocabulary: list[str], prepared: dict) -> dict:
    """Every split encoded in full (pre-padded to its longest review); the last 500 columns
    must equal prepare's arrays."""
    data = {}
    for name, frame in splits.items():
        x = encoded_whole(frame.text.tolist(), vocabulary)
        width = prepared[name][0].shape[1]
        if not np.array_equal(x[:, -width:], prepared[name][0]):
            raise SystemExit(f"re-encoded {name} split differs from data/prepared")
        data[name] = (x, prepared[name][1])
    return data


def encoded_whole(texts: list[str], vocabulary: list[str]) -> np.ndarray:
    """Token ids of every text in full, pre-padded to the longest."""
    sequences = encode(texts, vocabulary)
    return pad(sequences, max(map(len, sequences)), "pre", "pre")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--architecture", default="attention_rnn",
                        help="whose tuned hyperparameters every variant trains with")
    args = parser.parse_args()
    params = load_params()
    splits = split_reviews(pd.read_parquet(VALIDATED_PATH), params.prepare.val_fraction,
                           params.seed)
    vocabulary = load_vocabulary()
    prepared = {split: load_split(split) for split in ("train", "val", "test")}
    nbsvm = keras.models.load_model(EXPORT_DIR / "nbsvm" / MODEL_FILE)
    nb = {split: predict_texts(nbsvm, splits[split].text.tolist()) for split in ("val", "test")}
    cases = [c for c in load_cases() if c.test in NEGATION_TESTS]
    context = {"params": params, "splits": splits, "vocabulary": vocabulary, "nb": nb,
               "cases": cases, "prepared": prepared, "architecture": args.architecture}
    committed = read_json(EVAL_METRICS_DIR / f"{args.architecture}.json")["accuracy"]
    rows = {f"{args.architecture} (committed)": {"test_accuracy": committed}}
    if OUT.with_suffix(".csv").exists():  # earlier variants kept: a long run can go on later
        rows = {**pd.read_csv(OUT.with_suffix(".csv")).set_index("variant")
                .to_dict("index"), **rows}
    for name in args.variants:
        rows[name] = run_variant(VARIANTS[name], context)
        print(name, rows[name], flush=True)
        write(pd.DataFrame.from_dict(rows, orient="index").rename_axis("variant")
              .reset_index())


def pretraining_texts(context: dict) -> list[str]:
    """The fit and validation reviews and the 50,000 unlabelled ones: never the test reviews."""
    splits = context["splits"]
    return (splits["train"].text.tolist() + splits["val"].text.tolist()
            + pd.read_parquet(UNLABELLED_PATH).text.tolist())


def pretrain_language_model(sequences: list[np.ndarray], vocab_size: int, dim: int, units: int,
                            maxlen: int, bucket_width: int, seed: int,
                            settings: dict = LM) -> dict:
    """The embedding and GRU weights of a next-word model (embedding -> GRU -> softmax over the
    vocabulary, trained with sampled softmax) over each sequence's first `maxlen` tokens."""
    x = pad(sequences, maxlen, "post", "post")
    lengths = review_lengths(x)
    keras.utils.set_random_seed(seed)
    embedding, gru = layers.Embedding(vocab_size, dim), layers.GRU(units, return_sequences=True)
    output = layers.Dense(vocab_size)
    embedding.build((None, None))
    gru.build((None, None, dim))
    output.build((None, units))
    variables = [*embedding.trainable_variables, *gru.trainable_variables,
                 *output.trainable_variables]
    optimizer = keras.optimizers.Adam(settings["learning_rate"])
    optimizer.build(variables)

    @tf.function(reduce_retracing=True)
    def step(batch):
        inputs, targets = batch[:, :-1], batch[:, 1:]
        keep = targets != PAD
        with tf.GradientTape() as tape:
            states = gru(embedding(inputs), mask=inputs != PAD)
            loss = tf.reduce_mean(tf.nn.sampled_softmax_loss(
                tf.transpose(output.kernel), output.bias,
                tf.cast(tf.boolean_mask(targets, keep)[:, None], tf.int64),
                tf.boolean_mask(states, keep), min(settings["sampled"], vocab_size - 1),
                vocab_size, seed=seed))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    rng, losses = np.random.default_rng(seed), []
    started = time.perf_counter()
    for epoch in range(settings["epochs"]):
        batches = bucket_batches(lengths, settings["batch_size"], bucket_width, maxlen, rng)
        for i, (rows, width) in enumerate(batches, 1):
            losses.append(float(step(tf.constant(x[rows, :width]))))
            if i % 100 == 0 or i == len(batches):
                print(f"language model epoch {epoch + 1}/{settings['epochs']}, batch "
                      f"{i}/{len(batches)}: loss {np.mean(losses[-100:]):.3f}", flush=True)
    return {"embedding": embedding.get_weights(), "gru": gru.get_weights(), "losses": losses,
            "seconds": time.perf_counter() - started}


def start_from_language_model(model: PooledRNN, lm: dict) -> None:
    """The classifier's embedding and GRU take the language model's weights."""
    model.embedder.set_weights(lm["embedding"])
    next(layer for layer in model.inner.layers if isinstance(layer, layers.GRU)).set_weights(
        lm["gru"])


def run_variant(variant: tuple, context: dict) -> dict:
    pooling, start, whole, bidirectional, epsilon, seeds = variant
    params = context["params"]
    model_params, _ = final_model_params(params, context["architecture"])
    hp = model_params.hyperparameters
    if whole and "whole" not in context:
        context["whole"] = whole_reviews(context["splits"], context["vocabulary"],
                                         context["prepared"])
    if start == "word2vec" and "vectors" not in context:
        context["vectors"] = word_vectors(pretraining_texts(context), 64, 5, params.seed)[0]
    if start == "lm" and "lm" not in context:
        context["lm"] = pretrain_language_model(
            encode(pretraining_texts(context), context["vocabulary"]), params.prepare.vocab_size,
            hp["embedding_dim"], hp["units"], params.prepare.maxlen, params.train.bucket_width,
            params.seed)
    data = context["whole"] if whole else context["prepared"]
    probabilities, seconds = {"val": 0.0, "test": 0.0}, 0.0
    models = []
    for seed in range(params.seed, params.seed + seeds):
        keras.utils.set_random_seed(seed)
        model = PooledRNN(params.prepare.vocab_size, hp["embedding_dim"], hp["units"],
                          hp["dropout"], pooling, bidirectional, epsilon)
        if start == "word2vec":
            random = model.embedder.get_weights()[0]
            model.embedder.set_weights([embedding_matrix(context["vectors"],
                                                          context["vocabulary"], random)[0]])
        elif start == "lm":
            start_from_language_model(model, context["lm"])
        compile_model(model, model_params.learning_rate, params.train, model_params.optimizer)
        _, took = fit(model, data, model_params, params.train, "pre", seed)
        seconds += took
        for split in probabilities:
            probabilities[split] = probabilities[split] + predict_proba(
                model, data[split][0], 512, params.train.bucket_width) / seeds
        models.append(model)
    labels = {split: data[split][1] for split in ("val", "test")}
    weights, bias = fit_blend([probabilities["val"], context["nb"]["val"]], labels["val"],
                              params.hybrid.C, params.seed)
    hybrid = blend([probabilities["test"], context["nb"]["test"]], weights, bias)

    def predict(texts):
        x = encoded_whole(list(texts), context["vocabulary"])
        return np.mean([predict_proba(m, x, 512, params.train.bucket_width) for m in models],
                       axis=0)

    suite = run_suite(predict, context["cases"])
    row = {"test_accuracy": accuracy(probabilities["test"], labels["test"]),
           "val_accuracy": accuracy(probabilities["val"], labels["val"]),
           "hybrid_test_accuracy": accuracy(hybrid, labels["test"]),
           "negation_pass_rate": round(float(suite.passed.mean()), 4),
           "train_seconds": round(seconds, 1)}
    if start == "lm":  # the language model's own training, once for every seed
        row["pretrain_seconds"] = round(context["lm"]["seconds"], 1)
    return row


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return round(float(np.mean((probabilities >= 0.5) == labels)), 4)


def write(table: pd.DataFrame) -> None:
    write_results(OUT, table, "Levers for a recurrent model")


if __name__ == "__main__":
    main()
