"""The champion: one registered model whose `champion` alias moves only when a candidate wins.

The candidate and the current champion are both scored on the same held-out test reviews
(the champion is re-scored, so a changed test set cannot flatter either), and the alias moves
only if the candidate is better by at least the margin in params.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipeline.export import TEXT_COLUMN

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
                      threshold: float, margin: float) -> Decision:
    """Register the candidate as a version of `name`; move the alias to it only on a win.

    Both are scored on `test` (columns review, label).
    """
    client = MlflowClient()
    version = registered_version(client, name, model_uri, architecture)
    candidate_accuracy = accuracy_on(model_uri, test, threshold)
    champion = current_champion(client, name)
    champion_accuracy = None
    if champion is not None and champion.version == version.version:
        promoted, reason = False, "the candidate already is the champion"
        champion_accuracy = candidate_accuracy
    else:
        if champion is not None:
            champion_accuracy = accuracy_on(f"models:/{name}@{CHAMPION}", test, threshold)
        promoted, reason = decide(candidate_accuracy, champion_accuracy, margin)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    client.set_model_version_tag(name, version.version, "test_accuracy",
                                 f"{candidate_accuracy:.4f}")
    decision = Decision(promoted, reason, architecture, round(candidate_accuracy, 4),
                        None if champion_accuracy is None else round(champion_accuracy, 4),
                        margin, version.version, champion.version if champion else None)
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
