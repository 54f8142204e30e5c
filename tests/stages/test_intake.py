"""The intake stage: new labelled reviews checked like the archive's, leakage refused, copies
counted, drift measured against the training split, and the fit part grown by what is accepted."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import PROJECT_ROOT, synthetic_review

from pipeline import intake as stage
from pipeline.core.config import merged, parse_params, read_params
from pipeline.core.data import new_reviews, split_reviews
from pipeline.core.expectations import ValidationError
from pipeline.core.io import write_parquet
from pipeline.core.paths import INCOMING_METRICS_PATH, INCOMING_PATH, VALIDATED_PATH


def archive_reviews(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A validated table: n training and n test reviews, balanced, two reviews per movie."""
    rng = random.Random(seed)
    rows = [(i, split, i % 2, 9 if i % 2 else 2, f"tt{split == 'test'}{i // 2:05d}",
             synthetic_review(rng, bool(i % 2)))
            for split in ("train", "test") for i in range(n)]
    table = pd.DataFrame(rows, columns=["id", "split", "label", "rating", "movie_id", "text"])
    return table.astype({"label": "int8", "id": "int64", "rating": "int64"})


def fresh(n: int, seed: int, positive=None) -> pd.DataFrame:
    """New reviews from the archive's own generator (seeded apart from it)."""
    rng = random.Random(seed)
    labels = [i % 2 if positive is None else int(positive) for i in range(n)]
    return pd.DataFrame({"text": [synthetic_review(rng, bool(y)) for y in labels],
                         "label": labels})


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    write_parquet(archive_reviews(), VALIDATED_PATH)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params()))
    (tmp_path / "data/incoming").mkdir()
    (tmp_path / "data/incoming/README.md").write_text("not a batch")
    return tmp_path


def params(**validate) -> dict:
    """The project's params, with lengths that suit the synthetic reviews."""
    return merged(read_params(PROJECT_ROOT / "params.yaml"),
                  {"validate": {"max_words": 100, "median_words": [10, 100], **validate}})


def run(batches: dict[str, str | pd.DataFrame]) -> dict:
    for name, content in batches.items():
        path = INCOMING_PATH.parents[1] / "incoming" / name
        if isinstance(content, pd.DataFrame):
            content.to_csv(path, index=False)
        else:
            path.write_text(content, encoding="utf-8")
    stage.main()
    return json.loads(INCOMING_METRICS_PATH.read_text())


def test_no_new_reviews_writes_an_empty_batch_and_changes_no_split(project):
    report = run({})
    assert (report["received"], report["accepted"], report["drift"]) == (0, 0, None)
    assert pd.read_parquet(INCOMING_PATH).empty
    reviews = archive_reviews()
    before = split_reviews(reviews, 0.2, 42)
    after = split_reviews(reviews, 0.2, 42, new_reviews("train"))
    for name in before:
        assert after[name].equals(before[name])


def test_accepted_reviews_join_the_fit_part_only_and_copies_are_counted(project):
    train = archive_reviews().query("split == 'train'")
    batch = pd.concat([fresh(40, seed=1), train[["text", "label"]].head(3)])
    jsonl = "\n".join(json.dumps({"text": t, "label": y, "extra": "ignored"})
                      for t, y in zip(fresh(6, seed=2).text, [0, 1] * 3, strict=True))
    repeat = fresh(40, seed=1).head(2)
    report = run({"a.csv": batch, "b.jsonl": jsonl + "\n", "c.csv": repeat})
    assert report | {"drift": None} == {
        "files": 3, "received": 51, "accepted": 46, "copies_of_training_reviews": 3,
        "repeats_in_batch": 2, "dropped": 5, "use": "train", "drift": None}
    accepted = pd.read_parquet(INCOMING_PATH)
    assert accepted.source.unique().tolist() == [f"data/incoming/{n}" for n in ("a.csv",
                                                                                 "b.jsonl")]
    assert accepted.row.tolist() == [*range(1, 41), *range(1, 7)]
    splits = split_reviews(archive_reviews(), 0.2, 42, new_reviews("train"))
    plain = split_reviews(archive_reviews(), 0.2, 42)
    assert len(splits["train"]) == len(plain["train"]) + 46
    assert splits["train"].tail(46).text.tolist() == accepted.text.tolist()
    assert (splits["train"].tail(46).id < 0).all()
    assert splits["val"].equals(plain["val"]) and splits["test"].equals(plain["test"])
    assert new_reviews("report") is None


def test_a_batch_like_the_training_data_does_not_drift_and_a_shifted_one_does(project):
    alike = run({"a.csv": fresh(200, seed=3)})["drift"]
    assert alike["drifted"] == [] and alike["label"]["p_value"] > 0.5
    assert alike["oov"]["rate"] == pytest.approx(alike["oov"]["test_rate"], abs=0.01)
    shifted = fresh(60, seed=4, positive=True).assign(
        text=lambda t: t.text + " unheardof" * 30)
    (project / "data/incoming/a.csv").unlink()
    drift = run({"b.csv": shifted})["drift"]
    assert drift["drifted"] == ["label", "length"]
    assert drift["label"]["positive_share"] == 1.0 and drift["oov"]["rate"] > 0.3


@pytest.mark.parametrize("content, message", [
    ('{"text": 5, "label": 1}\n',
     r"'text is a string' \(column text\) failed: observed 5 in 1 row\(s\): "
     r"data/incoming/b.jsonl row 1"),
    ('{"text": "good enough film", "label": 1}\n{"text": null, "label": 0}\n',
     r"'text is a string'.* observed null in 1 row\(s\): data/incoming/b.jsonl row 2"),
    ('{"text": "  ", "label": 1}\n', r"'no empty review'.*data/incoming/b.jsonl row 1"),
    ('{"text": "one", "label": 1}\n',
     r"'review length within \[min_words, max_words\]'.* observed 1 words in 1 row"),
    ('{"text": "good film", "label": "pos"}\n',
     r"'labels in \{0, 1\}' \(column label\) failed: observed 'pos' in 1 row\(s\): "
     r"data/incoming/b.jsonl row 1"),
    ('{"text": "good film", "label": true}\n', r"'labels in \{0, 1\}'.* observed True"),
    ('{"text": "good film", "label": 1.0}\n', r"'labels in \{0, 1\}'.* observed 1.0"),
    ('{"text": "good film", "label": 2}\n\n{"text": "bad film", "label": 0}\n{"text"',
     r"data/incoming/b.jsonl line 4: not JSON \(Expecting"),
    ('["good film", 1]\n', r"b.jsonl line 1: not a JSON object with the keys text, label"),
])
def test_a_violated_expectation_names_the_file_the_row_and_the_expectation(
        project, content, message):
    with pytest.raises(ValidationError, match=message):
        run({"a.csv": fresh(5, seed=5), "b.jsonl": content})
    assert not INCOMING_PATH.exists() and not INCOMING_METRICS_PATH.exists()  # nothing written


@pytest.mark.parametrize("name, content, message", [
    ("a.csv", "text,label\ngood film indeed,positive\n",
     r"'labels in \{0, 1\}'.* observed 'positive' in 1 row\(s\): data/incoming/a.csv row 1"),
    ("a.csv", "text,rating\ngood film indeed,9\n",
     r"data/incoming/a.csv has no column 'label': a batch needs the columns text, label"),
    ("a.json", "[]", r"data/incoming/a.json: not a .csv or .jsonl file"),
])
def test_a_malformed_file_is_refused_by_name(project, name, content, message):
    with pytest.raises(ValidationError, match=message):
        run({name: content})
    assert not INCOMING_PATH.exists()


def test_a_file_that_is_not_utf8_is_refused(project):
    (project / "data/incoming/a.csv").write_bytes(b"text,label\ncaf\xe9 film ok,1\n")
    with pytest.raises(ValidationError, match=r"data/incoming/a.csv is not UTF-8 text \(byte 14"):
        stage.main()


def test_a_copy_of_a_test_review_is_refused_naming_it(project):
    test = archive_reviews().query("split == 'test'").iloc[[4, 7]]
    leaked = pd.concat([fresh(5, seed=6), pd.DataFrame({
        "text": test.text.str.upper(), "label": test.label})])  # near copies: same when normalized
    with pytest.raises(ValidationError, match=(
            r"'no copy of a test review' failed in 2 row\(s\): data/incoming/a.csv row 6 "
            r"\(= test/neg/4\), data/incoming/a.csv row 7 \(= test/pos/7\)")):
        run({"a.csv": leaked})
    assert not INCOMING_PATH.exists()


def test_a_copy_with_the_other_label_is_refused(project):
    train = archive_reviews().query("split == 'train'").head(1)
    flipped = pd.DataFrame({"text": train.text, "label": 1 - train.label})
    with pytest.raises(ValidationError, match=r"'copies of a review share one label' failed in "
                                              r"1 row\(s\): data/incoming/a.csv row 1"):
        run({"a.csv": flipped})


def test_copies_are_kept_when_drop_duplicates_is_off(project):
    train = archive_reviews().query("split == 'train'").head(2)
    batch = pd.concat([fresh(10, seed=7), train[["text", "label"]]])
    accepted, report = stage.intake(
        batch.assign(source="x.csv", row=np.arange(1, 13)).astype({"label": object}),
        archive_reviews(), parse_params(params(drop_duplicates=False)))
    assert (report["copies_of_training_reviews"], report["dropped"], len(accepted)) == (2, 0, 12)
