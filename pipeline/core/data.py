"""The prepared data and what serving must share with it: the text standardization, the
split into train, validation and test, and the encoded splits that `prepare` writes."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn.model_selection import StratifiedGroupKFold

from pipeline import UserError
from pipeline.core.config import PrepareParams
from pipeline.core.paths import INCOMING_PATH, PREPARED_DIR

VOCAB_FILE = "vocab.txt"
PAD, OOV = 0, 1
SPLITS = ("train", "val", "test")


@keras.saving.register_keras_serializable(package="pipeline")
def standardize(text: tf.Tensor) -> tf.Tensor:
    """Lowercase, drop HTML tags (IMDB is full of `<br />`), join contractions, split the rest."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"<[^>]*>", " ")
    text = tf.strings.regex_replace(text, r"['’]", "")  # don't -> dont, one token
    return tf.strings.regex_replace(text, r"[^\p{L}\p{N}]+", " ")


def tokenized(texts: list[str], batch: int = 2000) -> list[list[str]]:
    """Each text's words as `standardize` and prepare's vocabulary see them."""
    sentences = []
    for start in range(0, len(texts), batch):
        tokens = tf.strings.split(standardize(tf.constant(texts[start:start + batch])))
        sentences += [[t.decode("utf-8") for t in review] for review in tokens.to_list()]
    return sentences


def split_reviews(reviews: pd.DataFrame, val_fraction: float, seed: int,
                  new: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """{"train": the fit part, "val": validation, "test": the test split, untouched}.

    `new` (see `new_reviews`) is appended to the fit part, after the archive's own reviews:
    validation and test stay the same whatever arrives, so scores stay comparable over time.

    IMDB's train and test splits share no movie, so the test accuracy is measured on movies
    the model never saw. A validation set drawn review by review would share about 1,900
    movies with the fit part (a movie has up to 30 reviews, often of one tone, naming its
    title and actors), and its accuracy would overstate the test accuracy. So validation is
    grouped by movie, like the test split: the first fold of
    `StratifiedGroupKFold(n_splits=round(1 / val_fraction), shuffle=True, random_state=seed)`
    over the training reviews, grouped by `movie_id` and stratified by label. No movie is in
    both the fit part and validation; the validation share is about 1 / n_splits (0.2 for
    0.2) and its positive share about the training one. The same table and seed give the
    same split.
    """
    train = reviews[reviews.split == "train"]
    n_splits = round(1 / val_fraction)
    if n_splits < 2:
        raise UserError(f"prepare.val_fraction {val_fraction} is too large for a split grouped "
                        "by movie: it is carved as one fold of round(1 / val_fraction) >= 2; "
                        "use at most 0.66")
    if "movie_id" not in train:
        raise UserError("the reviews have no movie_id column, so validation cannot be grouped "
                        "by movie: rerun `dvc repro validate` (the download stage adds it)")
    movies = train.movie_id.to_numpy()
    if len(set(movies)) < n_splits:
        raise UserError(f"{len(set(movies))} training movies cannot make {n_splits} folds "
                        f"(prepare.val_fraction {val_fraction}): too few training reviews")
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    fit_rows, val_rows = next(folds.split(train, train.label, groups=movies))
    fit = train.iloc[np.sort(fit_rows)]
    if new is not None and len(new):
        fit = pd.concat([fit, new[fit.columns]], ignore_index=True)
    return {"train": fit, "val": train.iloc[np.sort(val_rows)],
            "test": reviews[reviews.split == "test"]}


def new_reviews(use: str, path: Path = INCOMING_PATH) -> pd.DataFrame | None:
    """The new labelled reviews the intake stage accepted, shaped like the archive's rows
    (ids -1, -2, ... and rating 0 mark them), when incoming.use is 'train'; else None. A
    project whose intake stage never ran (no file) has none."""
    if use != "train" or not path.exists():
        return None
    accepted = pd.read_parquet(path)
    return pd.DataFrame({
        "id": -np.arange(1, len(accepted) + 1, dtype="int64"), "split": "train",
        "label": accepted.label.astype("int8"), "rating": 0,  # no rating, no movie
        "movie_id": "", "text": accepted.text})


def load_split(name: str, prepared_dir: Path = PREPARED_DIR) -> tuple[np.ndarray, np.ndarray]:
    with np.load(prepared_dir / f"{name}.npz") as data:
        return data["x"], data["y"]


def load_vocabulary(prepared_dir: Path = PREPARED_DIR) -> list[str]:
    return (prepared_dir / VOCAB_FILE).read_text(encoding="utf-8").split("\n")[:-1]


def load_test_ids(prepared_dir: Path = PREPARED_DIR) -> np.ndarray:
    """Review ids of the test split, row for row with load_split("test")."""
    with np.load(prepared_dir / "test.npz") as data:
        return data["id"]


def cut(x: np.ndarray, maxlen: int, prepare: PrepareParams) -> np.ndarray:
    """Sequences padded and truncated at prepare.maxlen, re-encoded at a maxlen no longer than it.

    Exact when padding and truncating are on the same side: `pre` keeps the last tokens, padded
    on the left; `post` keeps the first ones, padded on the right.
    """
    if prepare.padding != prepare.truncating:
        raise UserError(
            f"prepare.padding ({prepare.padding}) and prepare.truncating ({prepare.truncating}) "
            "differ, so shorter encodings cannot be cut from the prepared ones: set both to "
            "the same side")
    if maxlen > x.shape[1]:
        raise UserError(f"maxlen {maxlen} exceeds the prepared length {x.shape[1]}: "
                        "lower lessons.maxlens or raise prepare.maxlen")
    return x[:, -maxlen:] if prepare.padding == "pre" else x[:, :maxlen]
