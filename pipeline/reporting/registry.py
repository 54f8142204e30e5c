"""The champion: one registered model whose `champion` alias moves only when a candidate wins.

The candidate and the current champion are both scored on the same held-out test reviews
(the champion is re-scored, so a changed test set cannot flatter either), and the alias moves
only if the candidate passes three gates: it beats the champion by at least the margin in
params (accuracy), its behavioral pass rates meet report.behavior_thresholds (behavior), and it
is not significantly worse than the strongest bag-of-words baseline on the test set (baseline,
as TFX's Evaluator blesses a model only against a baseline).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipeline.reporting.behavior import shortfalls
from pipeline.serving import TEXT_COLUMN

log = logging.getLogger(__name__)

CHAMPION = "champion"


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    candidate_architecture: str
    candidate_accuracy: float
    champion_accuracy: float | None
    margin: float
    version: str | None = None
    champion_version: str | None = None
    held_back_by: list[str] = field(default_factory=list)  # failed: accuracy, behavior, baseline
    behavior_pass_rates: dict[str, float] | None = None
    behavior_thresholds: dict[str, float] | None = None
    passed_over: dict[str, list[str]] = field(default_factory=dict)  # more accurate, failing
    vs_strongest_baseline: dict | None = None  # the report's McNemar test against it

    def as_dict(self) -> dict:
        return asdict(self)


def decide(candidate_accuracy: float, champion_accuracy: float | None,
           margin: float) -> tuple[bool, str]:
    """Promote when there is no champion, or when the candidate beats it by >= margin."""
    if champion_accuracy is None:
        return True, "no champion yet: the first candidate wins"
    gain = candidate_accuracy - champion_accuracy
    if gain >= margin - 1e-12:
        return True, f"beats the champion by {gain:+.4f} (margin {margin})"
    return False, f"does not beat the champion by the margin: {gain:+.4f} < {margin}"


def decide_promotion(candidate_accuracy: float, champion_accuracy: float | None, margin: float,
                     pass_rates: dict[str, float] | None = None,
                     thresholds: dict[str, float] | None = None,
                     vs_baseline: dict | None = None) -> tuple[bool, str, list[str]]:
    """The gates: accuracy (`decide`); given thresholds, behavior; given the report's
    comparison with the strongest baseline, baseline (refused if significantly worse).

    Returns (promoted, reason, the gates that held the candidate back). A candidate without
    pass rates fails any threshold above zero.
    """
    promoted, reason = decide(candidate_accuracy, champion_accuracy, margin)
    held_back_by = [] if promoted else ["accuracy"]
    if thresholds is not None:
        missing = shortfalls(pass_rates or {}, thresholds)
        if missing:
            held_back_by.append("behavior")
            reason += f"; behavioral pass rates below the thresholds: {', '.join(missing)}"
        else:
            reason += "; behavioral pass rates meet the thresholds"
    if vs_baseline is not None:
        against = f"the strongest baseline, {vs_baseline['baseline']} ({vs_baseline['text']})"
        if vs_baseline["significantly_worse"]:
            held_back_by.append("baseline")
            reason += f"; significantly worse than {against}"
        else:
            reason += f"; not significantly worse than {against}"
    return not held_back_by, reason, held_back_by


def choose_candidate(ranked: list[str], pass_rates: dict[str, dict[str, float]],
                     thresholds: dict[str, float]) -> tuple[str, dict[str, list[str]]]:
    """The most accurate architecture whose behavioral pass rates meet the thresholds.

    `ranked` runs from the most accurate down. Returns the candidate and, for each architecture
    ranked above it, the pass rates it fell short on. When none meets them, the most accurate
    is the candidate (and the behavior gate holds it back).
    """
    passed_over = {}
    for architecture in ranked:
        missing = shortfalls(pass_rates[architecture], thresholds)
        if not missing:
            return architecture, passed_over
        passed_over[architecture] = missing
    return ranked[0], {}


def accuracy_on(model_uri: str, reviews: pd.DataFrame, threshold: float) -> float:
    model = mlflow.pyfunc.load_model(model_uri)
    probability = model.predict(reviews[[TEXT_COLUMN]])["probability"].to_numpy()
    return float(np.mean((probability >= threshold) == reviews.label.to_numpy()))


def current_champion(client: MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def promote_if_better(name: str, architecture: str, model_uri: str, test: pd.DataFrame,
                      threshold: float, margin: float,
                      pass_rates: dict[str, float] | None = None,
                      thresholds: dict[str, float] | None = None,
                      passed_over: dict[str, list[str]] | None = None,
                      vs_baseline: dict | None = None) -> Decision:
    """Register the candidate as a version of `name`; move the alias to it only if it passes
    every gate (see `decide_promotion`).

    Both are scored on `test` (columns review, label); `pass_rates` are the candidate's
    behavioral pass rates per test type; `passed_over`, the more accurate architectures that
    `choose_candidate` skipped, goes into the decision as it is.
    """
    client = MlflowClient()
    version = registered_version(client, name, model_uri, architecture)
    candidate_accuracy = accuracy_on(model_uri, test, threshold)
    champion = current_champion(client, name)
    champion_accuracy, held_back_by = None, []
    if champion is not None and champion.version == version.version:
        promoted, reason = False, "the candidate already is the champion"
        champion_accuracy = candidate_accuracy
    else:
        if champion is not None:
            champion_accuracy = accuracy_on(f"models:/{name}@{CHAMPION}", test, threshold)
        promoted, reason, held_back_by = decide_promotion(
            candidate_accuracy, champion_accuracy, margin, pass_rates, thresholds, vs_baseline)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    client.set_model_version_tag(name, version.version, "test_accuracy",
                                 f"{candidate_accuracy:.4f}")
    for kind, rate in (pass_rates or {}).items():
        client.set_model_version_tag(name, version.version, f"behavior_{kind}_pass_rate",
                                     f"{rate:.4f}")
    decision = Decision(promoted, reason, architecture, round(candidate_accuracy, 4),
                        None if champion_accuracy is None else round(champion_accuracy, 4),
                        margin, version.version, champion.version if champion else None,
                        held_back_by, pass_rates, thresholds, dict(passed_over or {}),
                        vs_baseline)
    log.info("champion decision: %s", decision)
    return decision


def registered_version(client: MlflowClient, name: str, model_uri: str, architecture: str):
    """The version of `name` made from `model_uri`, registering it if it is new."""
    try:
        for version in client.search_model_versions(f"name='{name}'"):
            if version.source == model_uri:
                return version
    except MlflowException:
        pass  # no such registered model yet
    return mlflow.register_model(model_uri, name, tags={"architecture": architecture})
