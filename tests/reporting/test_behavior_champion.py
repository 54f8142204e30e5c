"""The behavioral suite against the current champion: `python -m pytest -m model`.

Uses the tracking store in MLFLOW_TRACKING_URI, else ./mlflow.db; skips when that store has no
champion (a fresh clone, CI).
"""

from __future__ import annotations

import os

import mlflow
import pytest
from helpers import PROJECT_ROOT
from mlflow import MlflowClient

from pipeline.core.config import load_params
from pipeline.reporting.behavior import (
    load_cases,
    model_predictor,
    pass_rates,
    run_suite,
    shortfalls,
)
from pipeline.reporting.registry import CHAMPION, current_champion

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def champion_uri():
    params = load_params(PROJECT_ROOT / "params.yaml")
    store = PROJECT_ROOT / "mlflow.db"
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri and not store.exists():  # don't create an empty store by looking
        pytest.skip(f"no champion: no MLFLOW_TRACKING_URI and no {store}")
    uri = uri or f"sqlite:///{store}"
    name = params.report.registered_model
    if current_champion(MlflowClient(tracking_uri=uri), name) is None:
        pytest.skip(f"no champion: {uri} has no model {name!r} with alias {CHAMPION!r}")
    mlflow.set_tracking_uri(uri)
    yield f"models:/{name}@{CHAMPION}", params
    mlflow.set_tracking_uri(None)


def test_the_champion_meets_the_behavioral_thresholds(champion_uri):
    model_uri, params = champion_uri
    results = run_suite(model_predictor(model_uri), load_cases(), params.evaluate.threshold,
                        params.report.behavior_dir_tolerance)
    rates = pass_rates(results)
    assert shortfalls(rates, params.report.behavior_thresholds) == [], rates
