"""`mlflow models serve` under load and under bad requests. One server on 127.0.0.1 serves a
tiny trained model for the whole module; the tests stop it themselves."""

from __future__ import annotations

import os
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from helpers import MLFLOW, free_port, labelled_reviews, start, synthetic_review

from pipeline.core.config import PrepareParams
from pipeline.core.models import build_model
from pipeline.prepare import encode, learn_vocabulary, pad
from pipeline.serving.text_model import log_text_model, text_model

pytestmark = pytest.mark.slow  # one `mlflow models serve` for the module

CLIENTS, REQUESTS_PER_CLIENT = 50, 4
# Blank reviews are refused with HTTP 400 (the input contract in
# pipeline/serving/__init__.py; before it they got a made-up score): tests/serving/test_serving.py
# covers them.
ODD_REVIEWS = ["Great 👍🏽🎬 film, très bien!", "<p>Awful<br/>boring</p><script>x</script>",
               "wonderful " * 2000]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(invocations URL, pyfunc model) for a small GRU trained on synthetic reviews."""
    folder = tmp_path_factory.mktemp("served")
    train = labelled_reviews(200, 0)
    vocabulary = learn_vocabulary(train.review.tolist(), 60)
    keras.utils.set_random_seed(0)
    core = build_model("gru", 60, 40, embedding_dim=8, units=8, dropout=0.0)
    core.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy")
    core.fit(pad(encode(train.review.tolist(), vocabulary), 40),
             train.label.to_numpy("float32"), epochs=4, verbose=0)
    text_model(core, vocabulary, PrepareParams(0.2, 60, 40)).save(folder / "model.keras")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment(
        "serving-load", artifact_location=(folder / "artifacts").as_uri()))
    with mlflow.start_run():
        model_uri = log_text_model(folder / "model.keras").model_uri
    port = free_port()
    server = start([MLFLOW, "models", "serve", "-m", model_uri, "--env-manager", "local",
                    "-h", "127.0.0.1", "-p", str(port)],
                   {**os.environ, "MLFLOW_TRACKING_URI": uri}, port, folder / "serve.log")
    try:
        yield f"http://127.0.0.1:{port}/invocations", mlflow.pyfunc.load_model(model_uri)
    finally:
        server.terminate()
        server.wait(timeout=30)


def request_bodies(seed: int = 0) -> list[list[str]]:
    """CLIENTS * REQUESTS_PER_CLIENT batches of 1 to 32 reviews, a few words to a few thousand."""
    rng = random.Random(seed)
    reviews = [synthetic_review(rng, rng.random() < 0.5) * rng.choice([1, 1, 5, 40])
               for _ in range(300)] + ODD_REVIEWS
    return [rng.sample(reviews, rng.choice([1, 1, 4, 32]))
            for _ in range(CLIENTS * REQUESTS_PER_CLIENT)]


def test_fifty_concurrent_clients_get_pyfuncs_answers(served):
    url, pyfunc = served
    bodies = request_bodies()
    unique = sorted({review for body in bodies for review in body})
    expected = dict(zip(unique, pyfunc.predict(pd.DataFrame({"review": unique}))["probability"],
                        strict=True))

    def client(batches: list[list[str]]) -> list[tuple[float, str | None]]:
        results = []
        with requests.Session() as session:
            for reviews in batches:
                started = time.perf_counter()
                try:
                    response = session.post(url, timeout=60, json={
                        "dataframe_split": {"columns": ["review"], "data": [[r] for r in reviews]}})
                    error = None if response.ok else f"HTTP {response.status_code}: {response.text}"
                    if error is None:
                        got = [p["probability"] for p in response.json()["predictions"]]
                        want = [expected[r] for r in reviews]
                        if len(got) != len(want) or not np.allclose(got, want, atol=1e-5):
                            error = f"wrong answer for {len(reviews)} review(s): {got} != {want}"
                except requests.RequestException as err:
                    error = f"{type(err).__name__}: {err}"
                results.append((time.perf_counter() - started, error))
        return results

    per_client = [bodies[i::CLIENTS] for i in range(CLIENTS)]
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        results = [r for answers in pool.map(client, per_client) for r in answers]

    latencies = sorted(seconds for seconds, _ in results)
    errors = [error for _, error in results if error]
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(f"\n{len(results)} requests from {CLIENTS} clients: {len(errors)} error(s), "
          f"median {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    assert len(results) == CLIENTS * REQUESTS_PER_CLIENT
    assert errors == [], errors[:3]


@pytest.mark.parametrize("review", ODD_REVIEWS + ["x" * (1 << 20)])
def test_odd_reviews_get_the_same_answer_as_pyfunc(served, review):
    url, pyfunc = served
    response = requests.post(url, json={"inputs": {"review": [review]}}, timeout=60)
    assert response.status_code == 200, response.text
    [answer] = response.json()["predictions"]
    want = pyfunc.predict(pd.DataFrame({"review": [review]}))["probability"][0]
    assert answer["probability"] == pytest.approx(want, abs=1e-5)


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("body, headers, status, says", [
    ('{"dataframe_split": {"columns": ["text"], "data": [["good"]]}}', JSON, 400,
     ["missing inputs ['review']"]),
    ('{"inputs": {"comment": ["good"]}}', JSON, 400, ["missing inputs ['review']"]),
    ("review\ngood film\n", {"Content-Type": "text/plain"}, 415,
     ["Got 'text/plain'", "application/json"]),
    ('{"inputs": ["good film"', JSON, 400, ["valid JSON", "Expecting ',' delimiter"]),
    ('{"inputs": ["caf\xe9"]}'.encode("latin-1"), JSON, 400, ["UnicodeDecodeError('utf-8'"]),
    ('{"dataframe_split": {"columns": ["review"]}}', JSON, 400, ["must have 'data' field"]),
])
def test_bad_requests_are_refused_with_a_client_error_naming_the_problem(served, body, headers,
                                                                         status, says):
    url, _ = served
    response = requests.post(url, data=body, headers=headers, timeout=60)
    assert response.status_code == status, response.text
    for words in says:
        assert words in response.text
    assert "Traceback" not in response.text
