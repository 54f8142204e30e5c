"""Stage `validate`: expectations on the reviews table, and its duplicates counted and listed.

Every expectation is declared once, in `review_schema` (one row per review) and `split_schema`
(one row per split: class balance, median length), as pandera checks. A violated expectation
stops the stage with one line naming the expectation, the observed values and the rows, and
nothing is written. On success the stage writes the table prepare reads, the expectation
results, duplicate counts and movie counts (metrics/validation.json) and a listing of the
duplicates.

Duplicates: two reviews are exact duplicates when their texts are byte-equal, near duplicates
when they are equal after `normalize`. IMDB has both, inside a split and across the train/test
boundary. They are always counted and listed; `validate.drop_duplicates` decides whether the
training split loses them (see `training_duplicates`). The test split is never changed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from pipeline.core.config import ValidateParams, load_params
from pipeline.core.expectations import (
    COPIES_AGREE,
    LABELS,
    LENGTH,
    NOT_EMPTY,
    ValidationError,
    failures,
    normalize,
    word_counts,
)
from pipeline.core.io import atomic_path, write_json, write_parquet
from pipeline.core.paths import REVIEWS_PATH, VALIDATED_PATH
from pipeline.core.stage import stage_app

log = logging.getLogger(__name__)

DUPLICATES_PATH = Path("data/validated/duplicates.csv")
VALIDATION_REPORT_PATH = Path("metrics/validation.json")
SPLITS = ("train", "test")
POSITIVE_MIN_RATING, NEGATIVE_MAX_RATING = 7, 4  # how Maas et al. labelled IMDB

# Expectation names, as they appear in error messages and in metrics/validation.json
# (those intake checks too are in pipeline/core/expectations.py).
RATING_AGREES = "rating consistent with label (positive >= 7, negative <= 4)"
UNIQUE_ID = "one review per split, label and id"
BALANCE = "class balance within 0.5 +- balance_tolerance"
MEDIAN_LENGTH = "median review length within median_words"
RATINGS = "ratings in 1..10"
SPLIT_NAMES = "split is train or test"
IDS = "ids >= 0"
MOVIE_IDS = "movie ids look like tt<digits>"


def _columns(*names: str):
    return lambda rows: [" ".join(f"{c}={row[c]}" for c in names) for _, row in rows.iterrows()]


# How to show what a failing row holds, for checks whose failure case is not that by itself.
SHOWN = {LENGTH: lambda rows: [f"{n} words" for n in word_counts(rows.text)],
         RATING_AGREES: _columns("label", "rating"), COPIES_AGREE: _columns("label"),
         UNIQUE_ID: _columns("split", "label", "id")}


def review_schema(params: ValidateParams) -> pa.DataFrameSchema:
    """Expectations on each review, and on reviews that share a text."""
    def rating_agrees(df: pd.DataFrame) -> pd.Series:
        return df.rating.where(df.label == 1, 11 - df.rating) >= POSITIVE_MIN_RATING

    def copies_agree(df: pd.DataFrame) -> pd.Series:
        return df.groupby(normalize(df.text)).label.transform("nunique") == 1

    return pa.DataFrameSchema(
        {
            "id": pa.Column("int64", pa.Check(lambda s: s >= 0, name=IDS)),
            "split": pa.Column(str, pa.Check(lambda s: s.isin(SPLITS), name=SPLIT_NAMES)),
            "label": pa.Column("int8", pa.Check(lambda s: s.isin([0, 1]), name=LABELS)),
            "rating": pa.Column("int64", pa.Check(lambda s: s.between(1, 10), name=RATINGS)),
            "movie_id": pa.Column(str, pa.Check(
                lambda s: s.astype(str).str.fullmatch(r"tt\d+"), name=MOVIE_IDS)),
            "text": pa.Column(str, [
                pa.Check(lambda t: t.str.strip().str.len() > 0, name=NOT_EMPTY),
                pa.Check(lambda t: word_counts(t).between(params.min_words, params.max_words),
                         name=LENGTH),
            ]),
        },
        checks=[pa.Check(rating_agrees, name=RATING_AGREES),
                pa.Check(copies_agree, name=COPIES_AGREE),
                pa.Check(lambda df: ~df.duplicated(["split", "label", "id"], keep=False),
                         name=UNIQUE_ID)],
        strict=True,
    )


def split_schema(params: ValidateParams) -> pa.DataFrameSchema:
    """Expectations on each split as a whole (rows: train, test)."""
    tolerance, (low, high) = params.balance_tolerance, params.median_words
    return pa.DataFrameSchema({
        "reviews": pa.Column(int, pa.Check.gt(0)),
        "positive_share": pa.Column(float, pa.Check(
            lambda s: (s - 0.5).abs() <= tolerance + 1e-12, name=BALANCE)),
        "median_words": pa.Column(float, pa.Check(lambda s: s.between(low, high),
                                                  name=MEDIAN_LENGTH)),
    })


def split_summary(reviews: pd.DataFrame) -> pd.DataFrame:
    summary = reviews.assign(words=word_counts(reviews.text)).groupby("split").agg(
        reviews=("label", "size"), positive_share=("label", "mean"),
        median_words=("words", "median"))
    missing = [s for s in SPLITS if s not in summary.index]
    if missing:
        raise ValidationError(f"expectation 'both splits present' failed: no {missing} reviews "
                              f"in {REVIEWS_PATH}")
    return summary.loc[list(SPLITS)].astype({"reviews": int, "median_words": float})


def row_keys(reviews: pd.DataFrame) -> pd.Series:
    """Where each review came from in the archive: split/pos|neg/id."""
    folder = reviews.label.map({1: "pos", 0: "neg"}).fillna(reviews.label.astype(str))
    return reviews.split.astype(str) + "/" + folder + "/" + reviews.id.astype(str)


def check_expectations(reviews: pd.DataFrame, params: ValidateParams) -> dict[str, bool]:
    """Raise ValidationError naming each violated expectation; else return each one's result."""
    found = failures(review_schema(params), reviews, row_keys(reviews), reviews, SHOWN)
    if not found:  # split-level checks only make sense on a well-formed table
        summary = split_summary(reviews)
        found = failures(split_schema(params), summary, summary.index.to_series())
    if found:
        raise ValidationError(f"{REVIEWS_PATH} fails validation: " + "; ".join(found))
    names = [IDS, SPLIT_NAMES, LABELS, RATINGS, MOVIE_IDS, NOT_EMPTY, LENGTH, RATING_AGREES,
             COPIES_AGREE, UNIQUE_ID, BALANCE, MEDIAN_LENGTH]
    return dict.fromkeys(names, True)


def duplicate_counts(reviews: pd.DataFrame, key: pd.Series) -> dict[str, int]:
    """Extra copies inside each split, and reviews whose text also occurs in the other split."""
    train, test = key[reviews.split == "train"], key[reviews.split == "test"]
    return {"within_train": int(train.duplicated().sum()),
            "within_test": int(test.duplicated().sum()),
            "test_in_train": int(test.isin(set(train)).sum()),
            "train_in_test": int(train.isin(set(test)).sum())}


def movie_counts(reviews: pd.DataFrame) -> dict[str, int]:
    """Movies per split, and movies with reviews in both (IMDB's splits share none)."""
    movies = {split: set(reviews.movie_id[reviews.split == split]) for split in SPLITS}
    return {"train": len(movies["train"]), "test": len(movies["test"]),
            "shared_train_test": len(movies["train"] & movies["test"])}


def training_duplicates(reviews: pd.DataFrame, key: pd.Series) -> pd.Series:
    """The training reviews `drop_duplicates` removes: a mask over `reviews`.

    A training review goes if its key equals a test review's (the test set must not be seen
    in training), or if an earlier training review, in table order (label, id), has its key
    (one copy of each repeated review is kept).
    """
    train = reviews.split == "train"
    in_test = key.isin(set(key[~train]))
    repeated = key.where(train & ~in_test).duplicated() & train & ~in_test
    return train & (in_test | repeated)


def duplicate_listing(reviews: pd.DataFrame, key: pd.Series, dropped: pd.Series) -> pd.DataFrame:
    """Every review that shares its near-duplicate key with another, grouped."""
    shared = key.duplicated(keep=False)
    listing = reviews[shared].assign(
        group=key[shared].factorize()[0],
        review=row_keys(reviews[shared]),
        exact_copy=reviews.text.duplicated(keep=False)[shared],
        dropped_from_training=dropped[shared],
        start=reviews.text[shared].str.slice(0, 100))
    columns = ["group", "review", "split", "label", "rating", "exact_copy",
               "dropped_from_training", "start"]
    return listing.sort_values(["group", "split", "label", "id"])[columns]


def validate(reviews: pd.DataFrame, params: ValidateParams
             ) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """(reviews for training, the validation report, the duplicate listing); raises on a
    violated expectation."""
    expectations = check_expectations(reviews, params)
    keys = {"exact": reviews.text, "normalized": normalize(reviews.text)}
    drop_key = keys[params.duplicates_by]
    dropped = training_duplicates(reviews, drop_key)
    if not params.drop_duplicates:
        dropped = pd.Series(False, index=reviews.index)
    kept = reviews[~dropped].reset_index(drop=True)
    report = {
        "expectations": expectations,
        "splits": {split: {"reviews": int(row.reviews),
                           "positive_share": round(float(row.positive_share), 4),
                           "median_words": float(row.median_words)}
                   for split, row in split_summary(reviews).iterrows()},
        "movies": movie_counts(reviews),
        "duplicates": {name: duplicate_counts(reviews, key) for name, key in keys.items()},
        "dropped_from_training": int(dropped.sum()),
        "drop_duplicates": params.drop_duplicates,
        "duplicates_by": params.duplicates_by,
    }
    return kept, report, duplicate_listing(reviews, keys["normalized"], dropped)


def main() -> None:
    params = load_params().validate
    reviews = pd.read_parquet(REVIEWS_PATH)
    kept, report, listing = validate(reviews, params)
    write_parquet(kept, VALIDATED_PATH)
    with atomic_path(DUPLICATES_PATH) as tmp:
        listing.to_csv(tmp, index=False)
    write_json(VALIDATION_REPORT_PATH, report)
    counts = report["duplicates"]["normalized"]
    log.info("all expectations hold; near duplicates: %d extra copies in train, %d in test, "
             "%d test reviews also in train", counts["within_train"], counts["within_test"],
             counts["test_in_train"])
    log.info("dropped %d training reviews (drop_duplicates: %s, by %s); wrote %s, %s and %s",
             report["dropped_from_training"], params.drop_duplicates, params.duplicates_by,
             VALIDATED_PATH, DUPLICATES_PATH, VALIDATION_REPORT_PATH)


if __name__ == "__main__":
    stage_app(__doc__, main)()
