"""Length-bucketed batches: reviews of similar length batched together, each batch cut to the
longest review in it (rounded up to the bucket width), so recurrent layers skip most padding.

A masked model gives the same prediction whatever padding a review carries, so this changes
speed, not results. Its batches are also left-aligned (padding after the review), the only mask
layout cuDNN accepts: on a GPU, Keras then runs GRU and LSTM with the cuDNN kernels (a pre-padded
mask there fails cuDNN's right-padding assertion). Models with a fixed input length get
full-width batches as prepared.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pipeline.core.data import PAD


def review_lengths(x: np.ndarray) -> np.ndarray:
    return (x != PAD).sum(axis=1)


def bucket_batches(lengths: np.ndarray, batch_size: int, bucket_width: int, maxlen: int,
                   rng: np.random.Generator | None = None) -> list[tuple[np.ndarray, int]]:
    """(row indices, width) per batch. With `rng`, rows and batch order are shuffled.

    Rows that would leave a bucket's last batch short move up to the next wider bucket, so all
    batches but one are full: XLA compiles once per batch shape, and a short batch in every
    bucket would double the shapes (and the compile time, which dominates short trainings).
    """
    widths = np.minimum(np.ceil(np.maximum(lengths, 1) / bucket_width) * bucket_width, maxlen)
    order = rng.permutation(len(lengths)) if rng is not None else np.arange(len(lengths))
    batches, carried = [], order[:0]
    for width in np.unique(widths):
        members = np.concatenate([carried, order[widths[order] == width]])
        full = len(members) - len(members) % batch_size
        batches += [(members[i:i + batch_size], int(width)) for i in range(0, full, batch_size)]
        carried = members[full:]
    if len(carried):
        batches.append((carried, int(widths.max())))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def left_align(tokens: np.ndarray) -> np.ndarray:
    """Move each row's tokens to its start, padding after them (rows hold one run of tokens)."""
    lengths = review_lengths(tokens)
    width = tokens.shape[1]
    first = np.argmax(tokens != PAD, axis=1) * (lengths > 0)  # where each row's tokens start
    source = (first[:, None] + np.arange(width)[None, :]) % width
    aligned = np.take_along_axis(tokens, source, axis=1)
    return np.where(np.arange(width)[None, :] < lengths[:, None], aligned, PAD)


def _cut(x: np.ndarray, width: int, padding: str) -> np.ndarray:
    """The batch's `width` columns that hold its reviews, left-aligned for a masked model."""
    return left_align(x[:, -width:]) if padding == "pre" else x[:, :width]


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, bucket_width: int,
                 padding: str = "pre", seed: int | None = None) -> tf.data.Dataset:
    """A tf.data pipeline of (tokens, label) batches; shuffled each epoch when `seed` is given."""
    labels = y.astype("float32")
    if not bucket_width:
        dataset = tf.data.Dataset.from_tensor_slices((x, labels))
        if seed is not None:
            dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return _prefetched(dataset.batch(batch_size))

    lengths = review_lengths(x)
    rng = np.random.default_rng(seed) if seed is not None else None

    def batches():
        for rows, width in bucket_batches(lengths, batch_size, bucket_width, x.shape[1], rng):
            yield _cut(x[rows], width, padding), labels[rows]

    # Every epoch has the same number of batches; saying so gives Keras a progress bar total.
    count = len(bucket_batches(lengths, batch_size, bucket_width, x.shape[1]))
    signature = (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None,), tf.float32))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return _prefetched(dataset.apply(tf.data.experimental.assert_cardinality(count)))


def _prefetched(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Two batches prepared ahead, with tf.data's autotuning off: destroying an iterator waits,
    idle, on the autotuning thread's sleep, which delayed epochs (docs/design.md)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


def predict_proba(model, x: np.ndarray, batch_size: int, bucket_width: int,
                  padding: str = "pre") -> np.ndarray:
    """P(positive) per row of `x`, in the order of `x`.

    Batch by batch with predict_on_batch: `model.predict` would open an autotuned tf.data
    iterator, and closing one can stall (see `_prefetched`).
    """
    if bucket_width and model.input_shape[1] is None:
        batches = ((rows, _cut(x[rows], width, padding)) for rows, width in
                   bucket_batches(review_lengths(x), batch_size, bucket_width, x.shape[1]))
    else:
        batches = ((rows, x[rows]) for rows in
                   np.array_split(np.arange(len(x)), range(batch_size, len(x), batch_size)))
    probabilities = np.empty(len(x), dtype="float32")
    for rows, tokens in batches:
        probabilities[rows] = model.predict_on_batch(tokens).reshape(-1)
    return probabilities
