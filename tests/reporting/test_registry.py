import mlflow
import pandas as pd
import pytest

from pipeline.reporting.registry import (
    choose_candidate,
    decide,
    decide_promotion,
    promote_if_better,
)


def test_first_candidate_wins_when_there_is_no_champion():
    promoted, reason = decide(0.80, None, margin=0.01)
    assert promoted and "no champion" in reason


@pytest.mark.parametrize("candidate, champion, margin, promoted", [
    (0.900, 0.890, 0.005, True),
    (0.900, 0.898, 0.005, False),
    (0.890, 0.890, 0.0, True),   # a zero margin promotes a tie: the newer model wins
    (0.880, 0.890, 0.0, False),
])
def test_candidate_must_beat_the_champion_by_the_margin(candidate, champion, margin, promoted):
    assert decide(candidate, champion, margin)[0] is promoted


THRESHOLDS = {"mft": 0.55, "inv": 0.9, "dir": 0.9}
GOOD = {"mft": 0.6, "inv": 0.95, "dir": 1.0}


def test_a_candidate_that_wins_on_accuracy_but_fails_behavior_is_held_back():
    promoted, reason, held_back_by = decide_promotion(
        0.95, 0.88, 0.002, {**GOOD, "inv": 0.7}, THRESHOLDS)
    assert not promoted and held_back_by == ["behavior"]
    assert "beats the champion" in reason and "inv 0.700 < 0.9" in reason


@pytest.mark.parametrize("accuracy, rates, held_back_by", [
    (0.95, GOOD, []),
    (0.85, GOOD, ["accuracy"]),
    (0.85, {**GOOD, "mft": 0.5}, ["accuracy", "behavior"]),
    (0.95, None, ["behavior"]),  # no behavioral results: cannot pass a threshold above zero
])
def test_both_gates_must_hold(accuracy, rates, held_back_by):
    promoted, _, held = decide_promotion(accuracy, 0.88, 0.002, rates, THRESHOLDS)
    assert held == held_back_by and promoted is (not held_back_by)


WORSE = {"baseline": "nbsvm", "points": -2.2, "p_value": 1e-6, "alpha": 0.05,
         "significantly_worse": True,
         "text": "-2.2 pts, significantly worse (McNemar p<0.0001)"}
LEVEL = {**WORSE, "points": 0.1, "p_value": 0.2, "significantly_worse": False,
         "text": "+0.1 pts, no significant difference (McNemar p=0.2)"}


def test_a_candidate_significantly_worse_than_the_strongest_baseline_is_held_back():
    promoted, reason, held = decide_promotion(0.95, None, 0.002, GOOD, THRESHOLDS, WORSE)
    assert not promoted and held == ["baseline"]
    assert reason.endswith("; significantly worse than the strongest baseline, nbsvm (-2.2 pts, "
                           "significantly worse (McNemar p<0.0001))")
    promoted, reason, held = decide_promotion(0.95, None, 0.002, GOOD, THRESHOLDS, LEVEL)
    assert promoted and held == [] and "not significantly worse than the strongest" in reason
    assert decide_promotion(0.85, 0.88, 0.002, GOOD, THRESHOLDS, WORSE)[2] == ["accuracy",
                                                                              "baseline"]


def test_without_thresholds_only_accuracy_decides():
    assert decide_promotion(0.95, 0.88, 0.002) == (True, decide(0.95, 0.88, 0.002)[1], [])


class Constant(mlflow.pyfunc.PythonModel):
    """Answers the same P(positive) for every review."""

    def __init__(self, probability: float):
        self.probability = probability

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({"probability": [self.probability] * len(model_input)})


@pytest.fixture
def store(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("registry")  # not the id an earlier test made active in its store
    yield
    mlflow.set_tracking_uri(None)


def test_the_alias_stays_on_the_champion_when_the_candidate_fails_behavior(store):
    test = pd.DataFrame({"review": ["good", "fine", "bad"], "label": [1, 1, 0]})
    uris = {}
    for name, probability in (("champion", 0.1), ("candidate", 0.9)):  # accuracy 1/3, 2/3
        with mlflow.start_run():
            uris[name] = mlflow.pyfunc.log_model(  # fixed requirements: no slow inference
                name="model", python_model=Constant(probability),
                pip_requirements=["mlflow"]).model_uri
    first = promote_if_better("m", "dense", uris["champion"], test, 0.5, 0.0, GOOD, THRESHOLDS)
    assert first.promoted and first.held_back_by == []
    second = promote_if_better("m", "gru", uris["candidate"], test, 0.5, 0.0,
                               {**GOOD, "dir": 0.5}, THRESHOLDS)
    assert not second.promoted and second.held_back_by == ["behavior"]
    assert second.candidate_accuracy > second.champion_accuracy
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias("m", "champion").version == first.version
    assert client.get_model_version("m", second.version).tags["behavior_dir_pass_rate"] == "0.5000"


def test_the_candidate_is_the_most_accurate_architecture_that_passes_behavior():
    rates = {"dense": {**GOOD, "dir": 0.85}, "conv1d": {**GOOD, "mft": 0.5}, "gru": GOOD,
             "lstm": GOOD}
    candidate, passed_over = choose_candidate(["dense", "conv1d", "gru", "lstm"], rates,
                                              THRESHOLDS)
    assert candidate == "gru"
    assert list(passed_over) == ["dense", "conv1d"]
    assert passed_over["dense"] == ["dir 0.850 < 0.9"]
    assert choose_candidate(["gru", "dense"], rates, THRESHOLDS) == ("gru", {})
    # none passes: the most accurate is the candidate, and the behavior gate will hold it back
    assert choose_candidate(["dense", "conv1d"], rates, THRESHOLDS) == ("dense", {})
