import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import PROJECT_ROOT, build_archive

from pipeline import UserError
from pipeline import prepare as preparing
from pipeline.core.config import write_params
from pipeline.core.data import OOV, split_reviews, standardize
from pipeline.download import read_archive
from pipeline.prepare import data_report, encode, learn_vocabulary, pad, shared_movies


def std(text: str) -> str:
    return standardize(tf.constant([text])).numpy()[0].decode("utf-8").split()


def test_standardize_strips_br_tags_and_punctuation():
    assert std("Great film.<br /><br />LOVED it!") == ["great", "film", "loved", "it"]


def test_standardize_keeps_contractions_and_accents_as_one_token():
    assert std("Don't miss this café") == ["dont", "miss", "this", "café"]


def reviews(n_per_label: int) -> pd.DataFrame:
    """One movie per review: a plain stratified split."""
    rows = [(i, split, label, 8 if label else 2, f"tt{int(split == 'test')}{label}{i:02d}",
             f"review {i}")
            for split in ("train", "test") for label in (0, 1) for i in range(n_per_label)]
    return pd.DataFrame(rows, columns=["id", "split", "label", "rating", "movie_id", "text"])


@pytest.fixture(scope="module")
def movie_reviews(tmp_path_factory) -> pd.DataFrame:
    """The synthetic archive's labelled reviews: movies of 1-4 reviews, some of both labels."""
    archive = build_archive(tmp_path_factory.mktemp("movies") / "a.tar.gz", per_folder=100,
                            unlabelled=0)
    return read_archive(archive)[0]


def test_split_keeps_test_apart_and_stratifies_validation():
    splits = split_reviews(reviews(50), val_fraction=0.2, seed=1)
    assert len(splits["test"]) == 100 and (splits["test"].split == "test").all()
    assert len(splits["val"]) == 20 and splits["val"].label.mean() == 0.5
    assert len(splits["train"]) == 80 and splits["train"].label.mean() == 0.5
    assert not set(splits["train"].index) & set(splits["val"].index)


def test_validation_shares_no_movie_with_the_fit_part_and_keeps_labels_balanced(movie_reviews):
    train = movie_reviews[movie_reviews.split == "train"]
    assert train.movie_id.nunique() < len(train) / 2  # the grouping has something to do
    assert (train.groupby("movie_id").label.nunique() == 2).any()
    for seed in range(5):
        splits = split_reviews(movie_reviews, 0.2, seed)
        fit, val = splits["train"], splits["val"]
        assert shared_movies(fit, val) == 0
        assert not set(fit.index) & set(val.index) and len(fit) + len(val) == len(train)
        assert 0.15 <= len(val) / len(train) <= 0.25
        assert abs(val.label.mean() - 0.5) <= 0.05 and abs(fit.label.mean() - 0.5) <= 0.05
        assert splits["test"].equals(movie_reviews[movie_reviews.split == "test"])


def test_a_table_without_movie_ids_is_refused(movie_reviews):
    with pytest.raises(UserError, match=r"no movie_id column.*dvc repro validate"):
        split_reviews(movie_reviews.drop(columns="movie_id"), 0.2, seed=0)


def test_split_is_reproducible_from_the_seed(movie_reviews):
    for table in (reviews(50), movie_reviews):
        a = split_reviews(table, 0.2, seed=7)["val"].index
        b = split_reviews(table, 0.2, seed=7)["val"].index
        c = split_reviews(table, 0.2, seed=8)["val"].index
        assert list(a) == list(b) and list(a) != list(c)


def test_validation_fraction_is_one_fold_of_round_one_over_it(movie_reviews):
    train = (movie_reviews.split == "train").sum()
    assert abs(len(split_reviews(movie_reviews, 0.5, 0)["val"]) / train - 0.5) <= 0.05
    with pytest.raises(UserError, match=r"prepare.val_fraction 0.7 is too large"):
        split_reviews(movie_reviews, 0.7, 0)
    with pytest.raises(UserError, match=r"2 training movies cannot make 5 folds"):
        split_reviews(movie_reviews.assign(movie_id=movie_reviews.label.map({0: "tt1", 1: "tt2"})),
                      0.2, 0)


def test_stage_reports_no_movie_shared_by_fit_and_validation(tmp_path, monkeypatch,
                                                            movie_reviews):
    monkeypatch.chdir(tmp_path)
    write_params(PROJECT_ROOT / "params.small.yaml", tmp_path / "params.yaml")
    preparing.INPUT_PATH.parent.mkdir(parents=True)
    movie_reviews.to_parquet(preparing.INPUT_PATH, index=False)
    preparing.main()
    report = json.loads(preparing.DATA_REPORT_PATH.read_text())
    assert report["movies_shared_train_val"] == 0
    assert report["train"]["reviews"] + report["val"]["reviews"] == 200
    with np.load(preparing.PREPARED_DIR / "val.npz") as val:
        assert sorted(val.files) == ["id", "x", "y"]


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
