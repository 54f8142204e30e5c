"""The champion through MLflow: registry and promotion gate, pyfunc, `mlflow models serve`,
and a remote tracking server. Servers run on 127.0.0.1 and are stopped by the tests."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from helpers import MLFLOW, free_port, labelled_reviews, start
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.types.schema import AnyType

from pipeline.core.config import PrepareParams
from pipeline.core.models import build_model
from pipeline.prepare import encode, learn_vocabulary, pad
from pipeline.reporting.registry import CHAMPION, promote_if_better
from pipeline.serving import FIX
from pipeline.serving.text_model import log_text_model, text_model

NAME = "imdb-sentiment"
GOOD = "Great wonderful film!<br />Loved it."
# reviews the input contract (pipeline/serving/__init__.py) refuses, and what it says of them
BAD = [
    (None, "is null"),
    (123, "is a number (123), not text"),
    (True, "is a boolean (True), not text"),
    (["a", "b"], "is a list (['a', 'b']), not text"),
    ("", "is empty"),
    ("  \t\n", "is only whitespace"),
]


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """A trained raw-text model and an untrained one, saved as .keras files."""
    folder = tmp_path_factory.mktemp("models")
    train, prepare = labelled_reviews(200, 0), PrepareParams(0.2, 60, 40)
    vocabulary = learn_vocabulary(train.review.tolist(), 60)
    keras.utils.set_random_seed(0)
    files = {}
    for name, epochs in (("trained", 8), ("untrained", 0)):
        core = build_model("gru", 60, 40, embedding_dim=8, units=8, dropout=0.0)
        core.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy")
        if epochs:
            x = pad(encode(train.review.tolist(), vocabulary), 40)
            core.fit(x, train.label.to_numpy("float32"), epochs=epochs, verbose=0)
        files[name] = folder / f"{name}.keras"
        text_model(core, vocabulary, prepare).save(files[name])
    return files


def log(keras_file: Path, architecture: str) -> str:
    with mlflow.start_run(tags={"architecture": architecture}):
        return log_text_model(keras_file).model_uri


@pytest.fixture(scope="module")
def local_store(tmp_path_factory, keras_files):
    """A SQLite tracking store whose champion is the trained model."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("imdb-sentiment")
    test = labelled_reviews(100, 1)
    trained = log(keras_files["trained"], "gru")
    first = promote_if_better(NAME, "gru", trained, test, 0.5, margin=0.01)
    return uri, test, trained, first


def test_first_candidate_becomes_champion(local_store):
    uri, _, _, first = local_store
    assert first.promoted and first.champion_accuracy is None
    assert first.candidate_accuracy >= 0.9
    champion = MlflowClient(uri).get_model_version_by_alias(NAME, CHAMPION)
    assert champion.version == first.version


def test_worse_candidate_is_registered_but_the_alias_stays(local_store, keras_files):
    uri, test, _, first = local_store
    mlflow.set_tracking_uri(uri)
    worse = promote_if_better(NAME, "lstm", log(keras_files["untrained"], "lstm"), test, 0.5,
                              margin=0.01)
    assert not worse.promoted and worse.version != first.version
    assert worse.champion_accuracy == first.candidate_accuracy
    client = MlflowClient(uri)
    assert client.get_model_version_by_alias(NAME, CHAMPION).version == first.version
    assert client.get_model_version(NAME, worse.version).tags["test_accuracy"]


def test_rerun_with_the_same_model_moves_nothing(local_store):
    uri, test, trained, first = local_store
    mlflow.set_tracking_uri(uri)
    again = promote_if_better(NAME, "gru", trained, test, 0.5, margin=0.0)
    assert not again.promoted and again.version == first.version
    assert "already is the champion" in again.reason


def test_logged_model_has_a_review_signature_and_an_input_example(local_store):
    mlflow.set_tracking_uri(local_store[0])
    info = mlflow.models.get_model_info(local_store[2])
    assert info.signature.inputs.input_names() == ["review"]
    assert info.signature.outputs.input_names() == ["probability"]
    assert info.saved_input_example_info is not None


def test_logged_model_types_the_review_as_any_so_a_null_reaches_the_check(local_store):
    # typed `string`, the scoring server would hand a JSON null or 123 over as "None" or "123"
    mlflow.set_tracking_uri(local_store[0])
    [review] = mlflow.models.get_model_info(local_store[2]).signature.inputs.inputs
    assert review.name == "review" and review.type == AnyType()


def test_pyfunc_refuses_a_bad_review_naming_its_row(local_store):
    mlflow.set_tracking_uri(local_store[0])
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@{CHAMPION}")
    for review, problem in BAD:
        frame = pd.DataFrame({"review": pd.Series([GOOD, review], dtype=object)})
        with pytest.raises(MlflowException, match=re.escape(f"row 1 {problem}")) as err:
            model.predict(frame)
        assert err.value.get_http_status_code() == 400


def test_pyfunc_predicts_a_dataframe_of_raw_reviews(local_store):
    mlflow.set_tracking_uri(local_store[0])
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@{CHAMPION}")
    answer = model.predict(pd.DataFrame({"review": ["Great wonderful film!<br />Loved it.",
                                                    "Awful, terrible, boring."]}))
    assert answer.probability[0] > 0.5 > answer.probability[1]


@contextmanager
def served_champion(tracking_uri: str, log_file: Path):
    """`mlflow models serve` of the champion; yields its /invocations URL."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    server = start([MLFLOW, "models", "serve", "-m", f"models:/{NAME}@{CHAMPION}",
                    "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                   env, port, log_file)
    try:
        yield f"http://127.0.0.1:{port}/invocations"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow  # `mlflow models serve`
def test_served_champion_answers_dataframe_split_and_inputs(local_store, tmp_path):
    with served_champion(local_store[0], tmp_path / "serve.log") as url:
        reviews = ["Great wonderful film!", "Awful, terrible, boring."]
        split = {"columns": ["review"], "data": [[r] for r in reviews]}
        for payload in ({"dataframe_split": split}, {"inputs": {"review": reviews}}):
            response = requests.post(url, json=payload, timeout=60)
            assert response.status_code == 200, response.text
            predictions = response.json()["predictions"]
            assert len(predictions) == 2
            assert predictions[0]["probability"] > 0.5 > predictions[1]["probability"]


def assert_refused(url: str, payload: dict, row_problem: str) -> None:
    response = requests.post(url, json=payload, timeout=60)
    assert response.status_code == 400, (payload, response.text)
    body = response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and "predictions" not in body
    assert f"cannot score 1 review(s): {row_problem}. Nothing was scored: {FIX}" in \
        body["message"], (payload, body)


@pytest.mark.slow  # `mlflow models serve`
def test_served_champion_refuses_a_bad_review_with_400_naming_its_row(local_store, tmp_path):
    with served_champion(local_store[0], tmp_path / "serve.log") as url:
        for review, problem in BAD:
            pair = [GOOD, review]
            for payload in ({"inputs": pair}, {"inputs": {"review": pair}},
                            {"dataframe_split": {"columns": ["review"],
                                                 "data": [[r] for r in pair]}},
                            {"dataframe_records": [{"review": r} for r in pair]}):
                assert_refused(url, payload, f"row 1 {problem}")
            if not isinstance(review, list):  # alone, a list of strings reads as the reviews
                assert_refused(url, {"inputs": [review]}, f"row 0 {problem}")
        response = requests.post(url, json={"inputs": [GOOD]}, timeout=60)
        assert response.status_code == 200, response.text
        [prediction] = response.json()["predictions"]
        assert prediction["probability"] > 0.5


@pytest.mark.slow  # `mlflow server`
def test_logging_and_registry_work_against_a_remote_tracking_server(keras_files, tmp_path):
    port = free_port()
    server = start([MLFLOW, "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'db'}",
                    "--artifacts-destination", (tmp_path / "artifacts").as_uri(),
                    "-h", "127.0.0.1", "-p", str(port)],
                   dict(os.environ), port, tmp_path / "server.log")
    try:
        uri = f"http://127.0.0.1:{port}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("imdb-sentiment")
        decision = promote_if_better(NAME, "gru", log(keras_files["trained"], "gru"),
                                     labelled_reviews(40, 2), 0.5, margin=0.0)
        client = MlflowClient(uri)
        assert client.get_model_version_by_alias(NAME, CHAMPION).version == decision.version
        [run] = client.search_runs([client.get_experiment_by_name("imdb-sentiment")
                                    .experiment_id])
        assert run.data.tags["architecture"] == "gru"
        assert np.isfinite(decision.candidate_accuracy)
    finally:
        server.terminate()
        server.wait(timeout=30)
