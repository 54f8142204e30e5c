import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline import UserError
from pipeline.cli import app
from pipeline.serving import InvalidReview
from pipeline.serving import predict as predicting


def fake_scorer(texts):
    """Positive iff the review says 'good'; a stand-in for a trained model."""
    return np.array([0.9 if "good" in t.lower() else 0.1 for t in texts])


def test_csv_and_jsonl_files_are_read_by_text_column(tmp_path):
    (tmp_path / "r.csv").write_text('id,text\n1,"Good, really good"\n2,bad\n')
    (tmp_path / "r.jsonl").write_text('{"review": "good"}\n\n{"review": "meh"}\n')
    (tmp_path / "r.txt").write_text("good one\n\nbad one\n")
    assert predicting.read_reviews(tmp_path / "r.csv") == ["Good, really good", "bad"]
    assert predicting.read_reviews(tmp_path / "r.jsonl") == ["good", "meh"]
    assert predicting.read_reviews(tmp_path / "r.txt") == ["good one", "bad one"]


def test_missing_column_names_the_columns_there(tmp_path):
    (tmp_path / "r.csv").write_text("id,body\n1,good\n")
    with pytest.raises(UserError, match="no column 'review' or 'text'.*id, body.*--column"):
        predicting.read_reviews(tmp_path / "r.csv")
    assert predicting.read_reviews(tmp_path / "r.csv", column="body") == ["good"]


def test_non_utf8_file_is_a_clear_error(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("très bon".encode("latin-1"))
    with pytest.raises(UserError, match="latin1.txt is not UTF-8 text.*offset 2"):
        predicting.read_reviews(tmp_path / "latin1.txt")


def test_a_blank_review_is_refused_naming_its_row_and_nothing_is_scored():
    # the input contract (pipeline.serving); before it, a blank review was labelled "unknown"
    def scorer(texts):
        raise AssertionError("nothing may be scored")

    with pytest.raises(InvalidReview, match="row 1 is only whitespace"):
        predicting.score(["good film", "   ", "bad film"], scorer)
    table = predicting.score(["good film", "bad film"], fake_scorer)
    assert table.label.tolist() == ["positive", "negative"] and table.probability[0] == 0.9


def test_html_and_huge_reviews_are_scored():
    table = predicting.score(["<b>good</b><br />", "good " * 200_000], fake_scorer)
    assert table.label.tolist() == ["positive", "positive"]


def test_cli_prints_a_table_or_jsonl(monkeypatch):
    monkeypatch.setattr(predicting, "load_scorer", lambda model: fake_scorer)
    runner = CliRunner()
    result = runner.invoke(app, ["predict", "A good film", "A bad film"])
    assert result.exit_code == 0, result.output
    assert "positive" in result.output and "0.9000" in result.output
    result = runner.invoke(app, ["predict", "--format", "jsonl", "good", "bad"])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["positive", "negative"]


def test_cli_reads_stdin(monkeypatch):
    monkeypatch.setattr(predicting, "load_scorer", lambda model: fake_scorer)
    result = CliRunner().invoke(app, ["predict", "--format", "jsonl"], input="good\nbad\n")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2


def test_cli_reports_a_missing_model_without_a_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["predict", "--model", "gru", "good"])
    assert result.exit_code == 2
    assert "no exported model for architecture 'gru'" in result.output
    assert "Traceback" not in result.output
