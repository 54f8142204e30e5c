import numpy as np
import pandas as pd
import tensorflow as tf

from pipeline.prepare import (
    OOV,
    data_report,
    encode,
    learn_vocabulary,
    pad,
    split_reviews,
    standardize,
)


def std(text: str) -> str:
    return standardize(tf.constant([text])).numpy()[0].decode("utf-8").split()


def test_standardize_strips_br_tags_and_punctuation():
    assert std("Great film.<br /><br />LOVED it!") == ["great", "film", "loved", "it"]


def test_standardize_keeps_contractions_and_accents_as_one_token():
    assert std("Don't miss this café") == ["dont", "miss", "this", "café"]


def reviews(n_per_label: int) -> pd.DataFrame:
    rows = [(i, split, label, 8 if label else 2, f"review {i}")
            for split in ("train", "test") for label in (0, 1) for i in range(n_per_label)]
    return pd.DataFrame(rows, columns=["id", "split", "label", "rating", "text"])


def test_split_keeps_test_apart_and_stratifies_validation():
    splits = split_reviews(reviews(50), val_fraction=0.2, seed=1)
    assert len(splits["test"]) == 100 and (splits["test"].split == "test").all()
    assert len(splits["val"]) == 20 and splits["val"].label.mean() == 0.5
    assert len(splits["train"]) == 80 and splits["train"].label.mean() == 0.5
    assert not set(splits["train"].index) & set(splits["val"].index)


def test_split_is_reproducible_from_the_seed():
    a = split_reviews(reviews(50), 0.2, seed=7)["val"].index
    b = split_reviews(reviews(50), 0.2, seed=7)["val"].index
    c = split_reviews(reviews(50), 0.2, seed=8)["val"].index
    assert list(a) == list(b) and list(a) != list(c)


def test_vocabulary_comes_from_the_given_texts_only():
    vocabulary = learn_vocabulary(["good good film", "bad film"], vocab_size=10)
    assert vocabulary[:2] == ["", "[UNK]"]
    assert set(vocabulary[2:]) == {"good", "film", "bad"}
    assert vocabulary[2] == "good"  # most frequent first
    [sequence] = encode(["good unseen film"], vocabulary)
    assert sequence.tolist() == [vocabulary.index("good"), OOV, vocabulary.index("film")]


def test_vocabulary_size_is_capped():
    vocabulary = learn_vocabulary(["a b c d e f g h"], vocab_size=5)
    assert len(vocabulary) == 5


def test_pre_padding_and_pre_truncation_keep_the_end_of_the_review():
    padded = pad([np.array([5, 6]), np.array([1, 2, 3, 4, 5, 6])], maxlen=4)
    assert padded.tolist() == [[0, 0, 5, 6], [3, 4, 5, 6]]


def test_data_report_measures_truncation_oov_and_balance():
    sequences = {"train": [np.array([2, 3, 1]), np.array([2])]}
    report = data_report(sequences, {"train": np.array([0, 1])}, maxlen=2)
    assert report["train"]["truncated_share"] == 0.5
    assert report["train"]["oov_rate"] == 0.25
    assert report["train"]["positive_share"] == 0.5
    assert report["train"]["length"]["p50"] == 2
