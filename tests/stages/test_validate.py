import dataclasses

import pandas as pd
import pytest
from helpers import PROJECT_ROOT, build_archive

from pipeline import validate as validation
from pipeline.core.config import ValidateParams, load_params, write_params
from pipeline.download import read_archive
from pipeline.validate import (
    ValidationError,
    duplicate_counts,
    normalize,
    training_duplicates,
    validate,
)

PARAMS = ValidateParams(balance_tolerance=0.1, min_words=2, max_words=50,
                        median_words=(1, 100))


def reviews() -> pd.DataFrame:
    """A valid table: two reviews per split and label, ratings that agree with the labels;
    movies tt10, tt11 in train and tt20, tt21 in test, each with one review of either label."""
    rows = [(i, split, label, 9 if label else 2, f"tt{1 + (split == 'test')}{i}",
             f"{'Loved' if label else 'Hated'} {split} film number {i}")
            for split in ("train", "test") for label in (0, 1) for i in range(2)]
    table = pd.DataFrame(rows, columns=["id", "split", "label", "rating", "movie_id", "text"])
    return table.astype({"label": "int8", "rating": "int64", "id": "int64"})


def test_a_valid_table_passes_every_expectation():
    kept, report, listing = validate(reviews(), PARAMS)
    assert kept.equals(reviews())
    assert all(report["expectations"].values()) and len(report["expectations"]) == 12
    assert report["expectations"]["movie ids look like tt<digits>"]
    assert report["splits"]["test"] == {"reviews": 4, "positive_share": 0.5, "median_words": 5.0}
    assert report["movies"] == {"train": 2, "test": 2, "shared_train_test": 0}
    assert listing.empty


def test_movies_shared_by_train_and_test_are_counted_not_refused():
    _, report, _ = validate(edited(movie_id={4: "tt10", 6: "tt10"}), PARAMS)  # test tt20 -> tt10
    assert report["movies"] == {"train": 2, "test": 2, "shared_train_test": 1}


def edited(**cells) -> pd.DataFrame:
    """reviews() with cells changed: edited(text={3: ""}) empties row 3's text."""
    table = reviews()
    for column, values in cells.items():
        for row, value in values.items():
            table.loc[row, column] = value
    return table


@pytest.mark.parametrize("table, message", [
    (edited(text={3: "   "}), r"'no empty review' \(column text\) failed: observed '   ' in 1 "
                             r"row\(s\): train/pos/1"),
    (edited(text={0: "word " * 60}),
     r"'review length within.*' \(column text\) failed: observed 60 words in 1 row\(s\): "
     r"train/neg/0"),
    (edited(label={5: 2}),
     r"'labels in \{0, 1\}' \(column label\) failed: observed 2 in 1 row\(s\): test/2/1"),
    (edited(rating={2: 3}), r"'rating consistent with label.*' failed: observed label=1 rating=3"
                            r" in 1 row\(s\): train/pos/0"),
    (edited(rating={0: 11, 1: 0}), r"'ratings in 1..10' \(column rating\) failed: observed "
                                   r"11, 0 in 2 row\(s\): train/neg/0, train/neg/1"),
    (edited(id={1: 0}), r"'one review per split, label and id' failed: observed "
                        r"split=train label=0 id=0, split=train label=0 id=0"),
    (edited(text={0: "Loved test film number 0"}),
     r"'copies of a review share one label' failed: .* train/neg/0, test/pos/0"),
    (reviews().astype({"label": "int64"}), r"'dtype\('int8'\)' \(column label\) failed: observed "
                                           r"'int64'"),
    (reviews().drop(columns="rating"), r"'column_in_dataframe' failed: observed 'rating'"),
    (edited(movie_id={6: "nm0000123"}), r"'movie ids look like tt<digits>' \(column movie_id\) "
                                        r"failed: observed 'nm0000123' in 1 row\(s\): test/pos/0"),
    (edited(movie_id={1: "tt12x", 7: ""}), r"'movie ids look like tt<digits>' \(column "
                                           r"movie_id\) failed: observed 'tt12x', '' in 2 "
                                           r"row\(s\): train/neg/1, test/pos/1"),
    (reviews().drop(columns="movie_id"), r"'column_in_dataframe' failed: observed 'movie_id'"),
    (reviews().assign(extra=1), r"'column_in_schema' failed: observed 'extra'"),
])
def test_each_violated_expectation_is_named_with_what_was_observed_and_where(table, message):
    with pytest.raises(ValidationError, match=message):
        validate(table, PARAMS)


def test_class_balance_is_checked_per_split():
    # test: three positive reviews of four
    table = edited(label={4: 1}, rating={4: 8}, id={4: 2})
    with pytest.raises(ValidationError, match=r"'class balance within 0.5 \+- balance_tolerance' "
                                              r"\(column positive_share\) failed: observed "
                                              r"0.75 in 1 row\(s\): test$"):
        validate(table, PARAMS)
    validate(table, dataclasses.replace(PARAMS, balance_tolerance=0.25))


def test_median_length_must_lie_within_bounds():
    with pytest.raises(ValidationError, match=r"'median review length within median_words'.*"
                                              r"observed 5.0 in 2 row\(s\): train, test"):
        validate(reviews(), dataclasses.replace(PARAMS, median_words=(10, 20)))


def test_several_violations_are_reported_together():
    with pytest.raises(ValidationError) as err:
        validate(edited(text={3: ""}, rating={2: 3}), PARAMS)
    assert "no empty review" in str(err.value) and "rating consistent" in str(err.value)


def leaky_table() -> pd.DataFrame:
    texts = {
        ("train", 0): "A <b>dull</b> film.",       # exact copy in train (1) and in test (0)
        ("train", 1): "A <b>dull</b> film.",
        ("train", 2): "a dull film",                # near copy of the two above
        ("train", 3): "Unique one.",
        ("test", 0): "A <b>dull</b> film.",
        ("test", 1): "Another, unique one.",
        ("test", 2): "Another unique ONE",          # near copy of test 1
        ("test", 3): "A third test review.",
    }
    rows = [(i, split, 0, 2, f"tt{i}", text) for (split, i), text in texts.items()]
    return pd.DataFrame(rows, columns=["id", "split", "label", "rating", "movie_id",
                                       "text"]).astype({"label": "int8"})


def test_normalization_ignores_case_html_and_punctuation():
    assert normalize(pd.Series(["A <br />DULL,  film!!", "a dull film"])).nunique() == 1


def test_duplicates_are_counted_exactly_and_after_normalization():
    table = leaky_table()
    assert duplicate_counts(table, table.text) == {
        "within_train": 1, "within_test": 0, "test_in_train": 1, "train_in_test": 2}
    assert duplicate_counts(table, normalize(table.text)) == {
        "within_train": 2, "within_test": 1, "test_in_train": 1, "train_in_test": 3}


def test_dropping_removes_train_copies_of_test_reviews_and_repeats_within_train():
    table = pd.concat([leaky_table(), leaky_table().assign(split="train", id=lambda d: d.id + 10)
                       .iloc[[3]]], ignore_index=True)      # "Unique one." twice in train
    dropped = training_duplicates(table, normalize(table.text))
    assert table[dropped].id.tolist() == [0, 1, 2, 13]      # the first "Unique one." stays
    assert not dropped[table.split == "test"].any()


def test_duplicates_are_dropped_only_when_params_say_so():
    labels = [0, 0, 0, 1, 0, 1, 1, 0]  # copies agree; positive shares 0.25 and 0.5
    table = leaky_table().assign(label=pd.Series(labels, dtype="int8"),
                                 rating=[9 if label else 2 for label in labels])
    params = dataclasses.replace(PARAMS, balance_tolerance=0.3, median_words=(1, 10))
    kept, report, listing = validate(table, params)
    assert len(kept) == len(table) and report["dropped_from_training"] == 0
    assert report["duplicates"]["normalized"]["train_in_test"] == 3
    assert len(listing) == 6 and set(listing.group) == {0, 1}
    kept, report, listing = validate(table, dataclasses.replace(params, drop_duplicates=True))
    assert report["dropped_from_training"] == 3 and len(kept) == len(table) - 3
    assert listing.dropped_from_training.sum() == 3
    exact = dataclasses.replace(params, drop_duplicates=True, duplicates_by="exact")
    assert validate(table, exact)[1]["dropped_from_training"] == 2  # "a dull film" stays


def test_the_synthetic_archive_passes_with_the_small_params(tmp_path):
    labelled, _ = read_archive(build_archive(tmp_path / "a.tar.gz", per_folder=60))
    params = load_params(PROJECT_ROOT / "params.small.yaml").validate
    kept, report, _ = validate(labelled, params)
    assert len(kept) == len(labelled) == 240
    assert report["duplicates"]["exact"]["test_in_train"] == 0
    assert report["movies"]["shared_train_test"] == 0 and report["movies"]["train"] >= 30


def test_a_failing_stage_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_params(PROJECT_ROOT / "params.small.yaml", "params.yaml")
    (tmp_path / "data").mkdir()
    edited(text={3: ""}).to_parquet("data/reviews.parquet", index=False)
    with pytest.raises(ValidationError, match="no empty review"):
        validation.main()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["data", "params.yaml",
                                                           "reviews.parquet"]
