"""What `imdb retrain` says about new labelled reviews: counts, drift, the champion's accuracy on
them, and each model's test accuracy before and after."""

from __future__ import annotations

import json
import subprocess

import pytest

from pipeline.reporting import new_data

REPORT = {"files": 2, "received": 2000, "accepted": 1990, "copies_of_training_reviews": 7,
          "repeats_in_batch": 3, "dropped": 10, "use": "train",
          "drift": {"label": {"positive_share": 0.61, "training_positive_share": 0.5,
                              "p_value": 0.0},
                    "length": {"median_words": 120.0, "training_median_words": 174.0,
                               "ks_statistic": 0.21, "p_value": 0.0},
                    "oov": {"rate": 0.041, "test_rate": 0.032},
                    "drifted": ["label", "length"]}}


def test_the_new_reviews_section_gives_counts_drift_and_the_champions_accuracy():
    champion = {"reviews": 1990, "model": "imdb-sentiment", "version": "7", "accuracy": 0.8812}
    text = new_data.new_reviews_markdown(REPORT, champion)
    assert ("Received 2,000 in 2 file(s); accepted 1,990 (7 copies of training reviews, "
            "3 repeats; 10 dropped); `incoming.use: train`.") in text
    assert "`imdb-sentiment` version 7, scores 88.12% on them" in text
    assert "| positive share | 0.610 | 0.500 | p = 0 |" in text
    assert "| median words | 120 | 174 | KS 0.210, p = 0 |" in text
    assert "| out-of-vocabulary words | 4.10% | | 3.20% (test split) |" in text
    assert "Drift flagged (p below `incoming.drift_p_value`): label, length." in text


def test_without_new_reviews_or_a_champion_it_says_so():
    assert new_data.new_reviews_markdown(None, None) == ("No new labelled reviews in "
                                                         "data/incoming.")
    text = new_data.new_reviews_markdown(REPORT | {"drift": None}, {
        "reviews": 1990, "model": "m", "version": None, "accuracy": None})
    assert "No champion yet to score them with." in text and "| drift |" not in text


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    subprocess.run(["git", "init", "-q", "-b", "main"], check=True)
    return tmp_path


def write(path, accuracy: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"accuracy": accuracy, "f1": 0.5}))


def test_before_and_after_compares_every_model_with_the_base_revision(repo):
    write(repo / "metrics/eval/gru.json", 0.86)
    write(repo / "metrics/baseline/nbsvm.json", 0.9115)
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-qm", "base"], check=True)
    write(repo / "metrics/eval/gru.json", 0.8712)
    write(repo / "metrics/eval/lstm.json", 0.88)  # new since the base
    write(repo / "metrics/hybrid.json", 0.9129)
    table = new_data.before_after("main")
    assert table.model.tolist() == ["gru", "lstm", "nbsvm", "hybrid"]
    text = new_data.before_after_markdown(table, "main")
    assert "| gru | 86.00% | 87.12% | +1.12 points |" in text
    assert "| lstm | n/a | 88.00% | n/a |" in text
    assert "| nbsvm | 91.15% | 91.15% | +0.00 points |" in text
    assert "| hybrid | n/a | 91.29% | n/a |" in text
