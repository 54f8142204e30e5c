"""Stage `prepare`: split, learn the vocabulary on the training part, encode and pad.

The 25k test reviews stay the held-out test set; the validation set is a seeded slice of the
25k training reviews, stratified by label and grouped by movie (see `split_reviews`). Text
standardization lives in `standardize`, a TensorFlow function that the raw-text inference
model reuses, so serving sees exactly what training saw.

Reads data/validated/reviews.parquet. Writes data/prepared/{train,val,test}.npz,
data/prepared/vocab.txt and metrics/data.json.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from pipeline.core.config import PrepareParams, load_params
from pipeline.core.data import OOV, PAD, VOCAB_FILE, new_reviews, split_reviews, standardize
from pipeline.core.io import atomic_path, write_json
from pipeline.core.paths import PREPARED_DIR, VALIDATED_PATH
from pipeline.core.stage import stage_app

log = logging.getLogger(__name__)

INPUT_PATH = VALIDATED_PATH  # the reviews that passed the `validate` stage
DATA_REPORT_PATH = Path("metrics/data.json")






def shared_movies(first: pd.DataFrame, second: pd.DataFrame) -> int:
    """How many movies have reviews in both tables (0 between fit and val, by construction)."""
    return len(set(first.movie_id) & set(second.movie_id))


def make_vectorizer(vocabulary: list[str] | None = None, vocab_size: int | None = None):
    """A TextVectorization with our standardization; ids 0 and 1 are padding and OOV."""
    return keras.layers.TextVectorization(
        max_tokens=vocab_size, standardize=standardize, vocabulary=vocabulary, ragged=True,
        name="vectorizer")


def learn_vocabulary(texts: list[str], vocab_size: int) -> list[str]:
    vectorizer = make_vectorizer(vocab_size=vocab_size)
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(1024))
    return vectorizer.get_vocabulary()


def encode(texts: list[str], vocabulary: list[str], batch_size: int = 2048) -> list[np.ndarray]:
    """Token ids of each text, unpadded."""
    vectorizer = make_vectorizer(vocabulary=vocabulary)
    sequences = []
    for start in range(0, len(texts), batch_size):
        ragged = vectorizer(tf.constant(texts[start:start + batch_size]))
        values, splits = ragged.flat_values.numpy(), ragged.row_splits.numpy()
        sequences += np.split(values.astype("int32"), splits[1:-1])
    return sequences


def pad(sequences: list[np.ndarray], maxlen: int, padding: str = "pre",
        truncating: str = "pre") -> np.ndarray:
    return keras.utils.pad_sequences(sequences, maxlen=maxlen, dtype="int32", padding=padding,
                                     truncating=truncating, value=PAD)


def data_report(sequences: dict[str, list[np.ndarray]], labels: dict[str, np.ndarray],
                maxlen: int) -> dict:
    report = {}
    for split, seqs in sequences.items():
        lengths = np.array([len(s) for s in seqs])
        tokens = np.concatenate(seqs) if seqs else np.zeros(0, "int32")
        report[split] = {
            "reviews": len(seqs),
            "positive_share": round(float(np.mean(labels[split])), 4),
            "truncated_share": round(float(np.mean(lengths > maxlen)), 4),
            "oov_rate": round(float(np.mean(tokens == OOV)) if tokens.size else 0.0, 4),
            "length": {f"p{q}": int(np.percentile(lengths, q)) for q in (10, 50, 90, 95, 99)},
        }
    return report


def main() -> None:
    params = load_params()
    prep: PrepareParams = params.prepare
    reviews = pd.read_parquet(INPUT_PATH)
    splits = split_reviews(reviews, prep.val_fraction, params.seed,
                           new_reviews(params.incoming.use))
    log.info("split: %s", {name: len(df) for name, df in splits.items()})
    vocabulary = learn_vocabulary(splits["train"].text.tolist(), prep.vocab_size)
    sequences = {name: encode(df.text.tolist(), vocabulary) for name, df in splits.items()}
    labels = {name: df.label.to_numpy("int8") for name, df in splits.items()}
    with atomic_path(PREPARED_DIR) as tmp:
        tmp.mkdir()
        (tmp / VOCAB_FILE).write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
        for name, df in splits.items():
            x = pad(sequences[name], prep.maxlen, prep.padding, prep.truncating)
            np.savez(tmp / f"{name}.npz", x=x, y=labels[name], id=df.id.to_numpy())
    report = data_report(sequences, labels, prep.maxlen)
    report["movies_shared_train_val"] = shared_movies(splits["train"], splits["val"])
    write_json(DATA_REPORT_PATH, report)
    log.info("wrote %s (vocabulary of %d) and %s", PREPARED_DIR, len(vocabulary),
             DATA_REPORT_PATH)


if __name__ == "__main__":
    stage_app(__doc__, main)()
