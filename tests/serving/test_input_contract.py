"""One input contract (pipeline.serving) on every path: the check itself, the Python API
(`pipeline.serving.predict.score`), `imdb predict`, and the pyfunc class the served model runs.
A review that is not a string, or is empty or only whitespace, is refused with an error
naming its row, and nothing is scored.
HTTP and the pyfunc loaded through MLflow: tests/serving/test_serving.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from typer.testing import CliRunner

from pipeline import UserError
from pipeline.cli import NATIVE_LOG_LINE, app
from pipeline.serving import FIX, InvalidReview, as_bad_request, check_reviews, served_reviews
from pipeline.serving import predict as predicting
from pipeline.serving.text_model import ReviewSentimentModel

ROOT = Path(__file__).resolve().parents[2]

BAD = [  # a review, and what the error says about its row
    (None, "is null"),
    (float("nan"), "is null"),
    (123, "is a number (123), not text"),
    (1.5, "is a number (1.5), not text"),
    (True, "is a boolean (True), not text"),
    (["a", "b"], "is a list (['a', 'b']), not text"),
    ({"text": "a"}, "is an object ({'text': 'a'}), not text"),
    ("", "is empty"),
    ("  \t\n", "is only whitespace"),
]


def never_called(texts):
    raise AssertionError("a batch with a bad review must not reach the model")


def fake_scorer(texts):
    return np.array([0.9 if "good" in t else 0.1 for t in texts])


# --- the check -----------------------------------------------------------------------------

@pytest.mark.parametrize("review, problem", BAD)
def test_a_bad_review_is_refused_naming_its_row_the_problem_and_the_fix(review, problem):
    with pytest.raises(InvalidReview) as err:
        check_reviews(["A good film.", review])
    assert str(err.value) == (f"cannot score 1 review(s): row 1 {problem}. "
                              f"Nothing was scored: {FIX}")
    assert isinstance(err.value, UserError) and isinstance(err.value, ValueError)


def test_every_bad_row_is_named_up_to_five_then_counted():
    reviews = ["fine", None, 7, "", "fine", " ", [1], False, None]
    with pytest.raises(InvalidReview) as err:
        check_reviews(reviews)
    message = str(err.value)
    assert message.startswith("cannot score 7 review(s): row 1 is null; row 2 is a number (7)")
    assert "row 5 is only whitespace; row 6 is a list ([1])" in message
    assert "row 7" not in message and "and 2 more bad rows" in message


@pytest.mark.parametrize("reviews", [
    ["A good film.", "Dull."],
    ("A good film.", "Dull."),
    np.array(["A good film.", "Dull."]),
    pd.Series(["A good film.", "Dull."], index=[7, 3]),
    pd.DataFrame({"id": [1, 2], "review": ["A good film.", "Dull."]}),
])
def test_good_reviews_come_back_as_plain_strings_in_order(reviews):
    texts = check_reviews(reviews)
    assert texts == ["A good film.", "Dull."] and all(type(t) is str for t in texts)


def test_one_string_instead_of_a_list_is_refused_saying_to_wrap_it():
    with pytest.raises(InvalidReview, match="got one str: wrap it in a list"):
        check_reviews("A good film.")


def test_a_frame_without_a_review_column_names_its_columns():
    with pytest.raises(InvalidReview, match="no 'review' column among the input's columns "
                                            r"\(text, id\): name it 'review'"):
        check_reviews(pd.DataFrame({"text": ["A good film."], "id": [1]}))


def test_a_refusal_becomes_mlflows_http_400_with_the_message():
    with pytest.raises(MlflowException) as err, as_bad_request():
        check_reviews([None])
    assert err.value.get_http_status_code() == 400
    body = json.loads(err.value.serialize_as_json())
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert body["message"].startswith("cannot score 1 review(s): row 0 is null")


def test_served_input_reads_mlflows_one_row_list_back_as_the_reviews():
    # For a column typed `any`, MLflow's server hands {"inputs": ["a", "b"]} over as one row
    # holding ["a", "b"]. A batch whose only review is a list of strings looks the same, so it
    # is read as those reviews: the one case the served model cannot refuse.
    assert served_reviews(pd.DataFrame({"review": [["Good.", "Dull."]]})) == ["Good.", "Dull."]
    assert served_reviews(pd.DataFrame({"review": ["Good.", "Dull."]})) == ["Good.", "Dull."]
    with pytest.raises(InvalidReview, match="row 0 is a list"):
        served_reviews(pd.DataFrame({"review": [["Good."], "Dull."]}))
    with pytest.raises(InvalidReview, match="row 0 is empty"):
        served_reviews(pd.DataFrame({"review": [["", "Dull."]]}))


# --- the Python API and the pyfunc class ----------------------------------------------------

@pytest.mark.parametrize("review, problem", BAD)
def test_score_refuses_a_bad_review_before_the_model_sees_the_batch(review, problem):
    with pytest.raises(InvalidReview, match=f"row 1 {re.escape(problem)}"):
        predicting.score(["A good film.", review], never_called)


@pytest.mark.parametrize("review, problem", BAD)
def test_the_pyfunc_model_refuses_a_bad_review_as_http_400(review, problem):
    model = ReviewSentimentModel()  # no Keras model loaded: the check comes first
    frame = pd.DataFrame({"review": pd.Series(["A good film.", review], dtype=object)})
    with pytest.raises(MlflowException, match=f"row 1 {re.escape(problem)}") as err:
        model.predict(None, frame)
    assert err.value.get_http_status_code() == 400


# --- imdb predict ---------------------------------------------------------------------------

def _predict_file(monkeypatch, path: Path):
    monkeypatch.setattr(predicting, "load_scorer", lambda model: fake_scorer)
    return CliRunner().invoke(app, ["predict", "--format", "jsonl", "--file", str(path)])


@pytest.mark.parametrize("review, problem", BAD)
def test_cli_refuses_a_bad_review_in_a_jsonl_file_naming_its_row(monkeypatch, tmp_path,
                                                                    review, problem):
    path = tmp_path / "reviews.jsonl"
    path.write_text(json.dumps({"review": "A good film."}) + "\n"
                    + json.dumps({"review": review}) + "\n")
    result = _predict_file(monkeypatch, path)
    assert result.exit_code == 2
    assert f"error: cannot score 1 review(s): row 1 {problem}" in result.output
    assert result.stdout == "" and "Traceback" not in result.output


def test_cli_refuses_an_empty_csv_cell_and_a_missing_jsonl_key(monkeypatch, tmp_path):
    (tmp_path / "r.csv").write_text('review\n"A good film."\n""\n')
    (tmp_path / "r.jsonl").write_text('{"review": "A good film."}\n{"text": "Dull."}\n')
    for name, problem in (("r.csv", "is empty"), ("r.jsonl", "is null")):
        result = _predict_file(monkeypatch, tmp_path / name)
        assert result.exit_code == 2 and f"row 1 {problem}" in result.output, name


def test_cli_still_scores_good_reviews_from_a_file(monkeypatch, tmp_path):
    (tmp_path / "r.jsonl").write_text('{"review": "good"}\n{"review": "bad"}\n')
    result = _predict_file(monkeypatch, tmp_path / "r.jsonl")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["label"] for line in result.stdout.splitlines()] == [
        "positive", "negative"]


# --- imdb predict in its own process: the real model, and no TensorFlow chatter --------------

@pytest.fixture(scope="module")
def exported_gru(tmp_path_factory) -> Path:
    """A folder holding exported/gru/model.keras, an untrained raw-text model."""
    from pipeline.core.config import PrepareParams
    from pipeline.core.models import build_model
    from pipeline.serving.text_model import text_model

    root = tmp_path_factory.mktemp("cli")
    (root / "exported" / "gru").mkdir(parents=True)
    core = build_model("gru", 20, 10, embedding_dim=4, units=4)
    vocabulary = ["good", "bad", "film", "dull"]
    text_model(core, vocabulary, PrepareParams(0.2, 20, 10)).save(
        root / "exported" / "gru" / "model.keras")
    return root


def imdb(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a user's shell has
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "predict", "--model", "gru",
                           *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)


def native_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if NATIVE_LOG_LINE.match(line.encode())]


@pytest.mark.slow  # two `imdb predict` processes, each starting TensorFlow
def test_cli_prints_no_tensorflow_chatter_unless_verbose(exported_gru):
    quiet = imdb(exported_gru, "--format", "jsonl", "A good film.")
    assert quiet.returncode == 0, quiet.stderr
    assert native_lines(quiet.stderr) == [] and "oneDNN" not in quiet.stderr, quiet.stderr
    assert len(quiet.stdout.splitlines()) == 1
    verbose = imdb(exported_gru, "--verbose", "--format", "jsonl", "A good film.")
    assert verbose.returncode == 0, verbose.stderr
    assert verbose.stdout == quiet.stdout and native_lines(verbose.stderr)


@pytest.mark.slow  # `imdb predict` in its own process
def test_cli_refuses_a_blank_review_in_one_line_without_chatter(exported_gru):
    result = imdb(exported_gru, "A good film.", "")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: cannot score 1 review(s): row 1 is empty. Nothing was scored: {FIX}"]
