"""Bad input, one table per kind: each case must fail with one line naming the input and the
fix (or, for reviews, be handled), never with a traceback. Complements test_download.py,
test_config.py, test_predict.py and test_tracking.py, which cover the other cases."""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import build_archive
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core.config import ParamsError, load_params, parse_params
from pipeline.download import ArchiveError, read_archive
from pipeline.serving import predict as predicting

ROOT = Path(__file__).resolve().parents[2]


# --- archives -----------------------------------------------------------------------------

def _flip_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + data[middle + 64:]


def _flip_crc(data: bytes) -> bytes:  # the gzip trailer: CRC-32, then the length
    return data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]


def _without(folder: str):
    """The archive without the members under `folder` (or the member ending in `folder`)."""
    def drop(data: bytes) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=io.BytesIO(data)) as src, \
                tarfile.open(fileobj=out, mode="w:gz") as dst:
            for member in src:
                if f"/{folder}/" not in member.name and not member.name.endswith(f"/{folder}"):
                    dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        return out.getvalue()
    return drop


def _editing(name: str, edit):
    """The archive with member `name`'s text replaced by edit(text)."""
    def rewrite(data: bytes) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=io.BytesIO(data)) as src, \
                tarfile.open(fileobj=out, mode="w:gz") as dst:
            for member in src:
                payload = src.extractfile(member).read() if member.isfile() else None
                if member.name == name:
                    payload = edit(payload.decode()).encode()
                    member.size = len(payload)
                dst.addfile(member, io.BytesIO(payload) if payload is not None else None)
        return out.getvalue()
    return rewrite


def _second_line(replacement: str):
    return lambda text: "".join(line if i != 1 else replacement + "\n"
                                for i, line in enumerate(text.splitlines(keepends=True)))


def _fifo_member(data: bytes) -> bytes:
    fifo = tarfile.TarInfo("aclImdb/train/pos/fifo")
    fifo.type = tarfile.FIFOTYPE
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, \
            tarfile.open(fileobj=out, mode="w:gz") as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        dst.addfile(fifo)
    return out.getvalue()


@pytest.mark.parametrize("name, damage, message", [
    ("corrupt-deflate", _flip_middle, "truncated or corrupt; download it again"),
    ("corrupt-crc", _flip_crc, r"CRC check failed.*truncated or corrupt; download it again"),
    ("empty", lambda data: b"", r"\(empty file\).*download it again"),
    ("gzip-of-text", lambda data: gzip.compress(b"not a tar"), "download it again"),
    ("missing-test-neg", _without("test/neg"),
     r"no reviews in aclImdb/test/neg/: the archive is incomplete; download it again"),
    ("missing-train", _without("train"),
     r"no reviews in aclImdb/train/pos/, aclImdb/train/neg/.*download it again"),
    ("fifo-member", _fifo_member, r"refusing special member 'aclImdb/train/pos/fifo'"),
    ("missing-urls", _without("test/urls_pos.txt"),
     r"has no aclImdb/test/urls_pos.txt, which gives the movie of each review in "
     r"aclImdb/test/pos/: the archive is incomplete; download it again"),
    ("missing-unsup-urls", _without("train/urls_unsup.txt"),
     r"has no aclImdb/train/urls_unsup.txt.*incomplete; download it again"),
    ("url-without-title", _editing("aclImdb/train/urls_neg.txt",
                                   _second_line("http://www.imdb.com/name/nm0000123/")),
     r"aclImdb/train/urls_neg.txt line 2 is not an IMDB title URL.*'http://www.imdb.com/name/"
     r"nm0000123/'; the archive is corrupt; download it again"),
    ("blank-url-line", _editing("aclImdb/test/urls_pos.txt", _second_line("")),
     r"aclImdb/test/urls_pos.txt line 2 is not an IMDB title URL.*''; the archive is corrupt"),
    ("short-urls", _editing("aclImdb/train/urls_pos.txt", lambda text: text.splitlines()[0]),
     r"aclImdb/train/urls_pos.txt has 1 lines, so review aclImdb/train/pos/1_\d+.txt has no "
     r"movie \(it needs line 2\): the archive is incomplete or corrupt; download it again"),
])
def test_bad_archive_is_one_line_naming_the_file_and_the_fix(tmp_path, name, damage, message):
    good = build_archive(tmp_path / "good.tar.gz", per_folder=3, unlabelled=2).read_bytes()
    bad = tmp_path / f"{name}.tar.gz"
    bad.write_bytes(damage(good))
    with pytest.raises(ArchiveError, match=message) as err:
        read_archive(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_the_good_archive_passes_the_same_checks(tmp_path):
    good = build_archive(tmp_path / "good.tar.gz", per_folder=3, unlabelled=2)
    labelled, _ = read_archive(good)
    assert len(labelled) == 12


# --- params -------------------------------------------------------------------------------

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("path, value, message", [
    ("models.gru.units", 0, r"models\.gru\.units must be >= 1, got 0"),
    ("models.gru.units", -8, r"models\.gru\.units must be >= 1, got -8"),
    ("models.conv1d.kernel_size", 0, r"models\.conv1d\.kernel_size must be >= 1"),
    ("models.gru.embedding_dim", None, r"models\.gru\.embedding_dim must be an integer, got None"),
    ("models.gru.units", "64", r"models\.gru\.units must be an integer, got '64' \(str\)"),
    ("models.gru.units", 8.5, r"models\.gru\.units must be an integer, got 8\.5"),
    ("models.gru.units", True, r"models\.gru\.units must be an integer, got True"),
    ("models.gru.dropout", 1.5, r"models\.gru\.dropout must be in \[0, 1\), got 1\.5"),
    ("models.gru.dropout", "high", r"models\.gru\.dropout must be a number, got 'high'"),
    ("models.attention_rnn.cell", "transformer", r"attention_rnn\.cell must be one of .*gru"),
    ("models.gru.learning_rate", "fast", r"models\.gru\.learning_rate must be a number"),
    ("models.gru.batch_size", 0, r"models\.gru\.batch_size must be >= 1"),
    ("models.gru.batch_size", 32.5, r"models\.gru\.batch_size must be an integer, got 32\.5"),
    ("models.gru", [1, 2], r"models\.gru must be a mapping"),
    ("prepare.val_fraction", 0, r"prepare\.val_fraction must be between 0 and 1"),
    ("prepare.val_fraction", 1.0, r"prepare\.val_fraction must be between 0 and 1"),
    ("prepare.val_fraction", -0.1, r"prepare\.val_fraction must be between 0 and 1"),
    ("prepare.val_fraction", "0.2", r"prepare\.val_fraction must be a number, got '0\.2'"),
    ("prepare.maxlen", 0, r"prepare\.maxlen must be >= 1"),
    ("prepare.maxlen", "200", r"prepare\.maxlen must be an integer, got '200'"),
    ("prepare.vocab_size", -1, r"prepare\.vocab_size must be >= 3"),
    ("train.max_epochs", "ten", r"train\.max_epochs must be an integer, got 'ten'"),
    ("train.clipnorm", "1", r"train\.clipnorm must be a number or null, got '1'"),
    ("train", [1, 2], r"train must be a mapping of keys"),
    ("tune.n_trials", 2.5, r"tune\.n_trials must be an integer"),
    ("evaluate.n_bootstrap", 0, r"evaluate\.n_bootstrap must be >= 100"),
    ("seed", "x", r"seed must be an integer, got 'x'"),
    ("architectures", "gru", r"architectures must be a list of architecture names"),
])
def test_bad_param_is_one_line_naming_the_key(path, value, message):
    raw = copy.deepcopy(PARAMS)
    *parents, last = path.split(".")
    section = raw
    for key in parents:
        section = section[key]
    section[last] = value
    with pytest.raises(ParamsError, match=message) as err:
        parse_params(raw)
    assert str(err.value).startswith("params.yaml") and "\n" not in str(err.value)


def test_the_shipped_values_still_pass_the_type_checks():
    for name in ("params.yaml", "params.small.yaml"):
        params = load_params(ROOT / name)
        assert isinstance(params.prepare.val_fraction, float)
        assert all(isinstance(m.batch_size, int) for m in params.models.values())


def test_tuned_values_of_the_wrong_type_are_named():
    gru = parse_params(copy.deepcopy(PARAMS)).model("gru")
    assert gru.with_values({"units": 16, "dropout": 0}).hyperparameters["units"] == 16
    with pytest.raises(ParamsError, match=r"models\.gru\.units must be an integer"):
        gru.with_values({"units": "16"})


def test_params_file_with_a_syntax_error_is_one_line_with_the_line_number(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: 1\nprepare: [unclosed\n")
    with pytest.raises(ParamsError, match=r"params.yaml is not valid YAML at line 3") as err:
        load_params(bad)
    assert "\n" not in str(err.value) and "fix the file" in str(err.value)


# --- reviews to `imdb predict` ------------------------------------------------------------

def fake_scorer(texts):
    """Positive iff the review says 'good'; a stand-in for a trained model."""
    return np.array([0.9 if "good" in t.lower() else 0.1 for t in texts])


def _predict(monkeypatch, args, stdin=None):
    monkeypatch.setattr(predicting, "load_scorer", lambda model: fake_scorer)
    return CliRunner().invoke(app, ["predict", "--format", "jsonl", *args], input=stdin)


@pytest.mark.parametrize("review, label", [
    ("good 👍🏽🎬 — très bien", "positive"),
    ("😡😡😡", "negative"),
    ("<script>alert('good')</script><br />", "positive"),
    ("x" * (1 << 20), "negative"),
])
def test_odd_reviews_as_arguments_are_answered_one_row_each(monkeypatch, review, label):
    result = _predict(monkeypatch, [review, "a good film"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["label"] for r in rows] == [label, "positive"]
    assert rows[0]["review"] == review  # emoji and HTML come back unchanged
    assert isinstance(rows[0]["probability"], float)


@pytest.mark.parametrize("review, problem", [("", "is empty"), ("   \t  ", "is only whitespace")])
def test_a_blank_review_as_an_argument_is_refused_naming_its_row(monkeypatch, review, problem):
    # the input contract (pipeline.serving); before it, a blank review was labelled "unknown"
    result = _predict(monkeypatch, ["a good film", review])
    assert result.exit_code == 2
    assert f"row 1 {problem}" in result.output and "Nothing was scored" in result.output
    assert result.stdout == "" and "Traceback" not in result.output


def test_non_utf8_stdin_is_one_line_without_a_traceback(monkeypatch):
    result = _predict(monkeypatch, [], stdin="très bon\n".encode("latin-1"))
    assert result.exit_code == 2
    assert "standard input is not UTF-8 text" in result.output and "iconv" in result.output
    assert "Traceback" not in result.output


def test_blank_stdin_is_a_clear_error(monkeypatch):
    result = _predict(monkeypatch, [], stdin=" \n\n\t\n")
    assert result.exit_code == 2
    assert "no reviews given" in result.output and "Traceback" not in result.output


def test_wrong_column_in_a_jsonl_file_names_the_columns_and_the_option(monkeypatch, tmp_path):
    reviews = tmp_path / "reviews.jsonl"
    reviews.write_text('{"comment": "good"}\n')
    result = _predict(monkeypatch, ["--file", str(reviews)])
    assert result.exit_code == 2
    assert "reviews.jsonl has no column 'review' or 'text'; columns: comment" in result.output
    assert "--column" in result.output and "Traceback" not in result.output


# --- tracking -----------------------------------------------------------------------------

def test_tracking_uri_on_a_dead_port_fails_within_seconds_saying_so(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    stage = subprocess.run(
        [sys.executable, "-c", "from pipeline.core.stage import run_stage; "
         "from pipeline.core import tracking; run_stage(tracking.setup)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert stage.returncode == 1
    errors = [line for line in stage.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, stage.stderr
    assert (f"cannot reach the MLflow tracking store at http://127.0.0.1:{port}: nothing is "
            "listening there (connection refused)") in errors[0]
    assert "unset MLFLOW_TRACKING_URI" in errors[0] and "Traceback" not in stage.stderr
    assert elapsed < 20, f"took {elapsed:.1f} s"
