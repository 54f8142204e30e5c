"""Stage `promote`: register the report's candidate and move the `champion` alias to it only
if it passes every gate (pipeline/reporting/registry.py): it beats the champion by the margin,
passes the behavioral thresholds, and is not significantly worse than the strongest baseline.

Reads reports/candidate.json and reports/behavior_pass_rates.csv (from `report`), the
candidate's exported/<arch>/model_uri.txt (from `export`) and the test reviews
(data/reviews.parquet), on which the candidate and the current champion are both scored.
Writes reports/promotion.json (the decision) and reports/promotion.md (the champion and the
gates), and logs both, with the decision as `champion.*` params, to an MLflow run tagged
stage=promote. The registry is the one side effect outside the project's files.
"""

from __future__ import annotations

import logging

import mlflow
import pandas as pd

from pipeline import UserError
from pipeline.core import tracking
from pipeline.core.config import load_params
from pipeline.core.io import atomic_path, read_json, write_json
from pipeline.core.paths import (
    CANDIDATE_PATH,
    EXPORT_DIR,
    PROMOTION_PAGE_PATH,
    PROMOTION_PATH,
    REPORTS_DIR,
    REVIEWS_PATH,
)
from pipeline.core.stage import stage_app
from pipeline.reporting.promotion_page import gate_markdown, promotion_markdown
from pipeline.reporting.registry import promote_if_better
from pipeline.serving import TEXT_COLUMN

log = logging.getLogger(__name__)


def main() -> None:
    params = load_params()
    if not CANDIDATE_PATH.exists():
        raise UserError(f"{CANDIDATE_PATH} not found: run `dvc repro report` first")
    candidate = read_json(CANDIDATE_PATH)
    architecture = candidate["candidate_architecture"]
    per_architecture = pd.read_csv(REPORTS_DIR / "behavior_pass_rates.csv")
    reviews = pd.read_parquet(REVIEWS_PATH)
    test = reviews[reviews.split == "test"].rename(columns={"text": TEXT_COLUMN})
    model_uri = (EXPORT_DIR / architecture / "model_uri.txt").read_text().strip()
    name = params.report.registered_model

    tracking.setup()
    check_logged(model_uri, architecture)
    tags = {"stage": "promote", "git_commit": tracking.git_commit()}
    with mlflow.start_run(run_name="promotion", tags=tags):
        decision = promote_if_better(name, architecture, model_uri, test,
                                     params.evaluate.threshold, params.report.promotion_margin,
                                     candidate["behavior_pass_rates"],
                                     params.report.behavior_thresholds,
                                     candidate["passed_over"],
                                     candidate.get("vs_strongest_baseline")).as_dict()
        with atomic_path(PROMOTION_PAGE_PATH) as tmp:
            tmp.write_text(promotion_markdown(decision, name)
                           + gate_markdown(decision, per_architecture,
                                           candidate.get("ungated_tests", [])),
                           encoding="utf-8")
        write_json(PROMOTION_PATH, decision)
        for path in (PROMOTION_PATH, PROMOTION_PAGE_PATH):
            mlflow.log_artifact(str(path), artifact_path="promotion")
        mlflow.log_params({f"champion.{k}": v for k, v in decision.items()})
    log.info("candidate %s %s: %s", architecture,
             "promoted" if decision["promoted"] else "not promoted", decision["reason"])


def check_logged(model_uri: str, architecture: str) -> None:
    """The exported model must be in this tracking store, or registering it fails deep inside
    MLflow: say which store and how to log it there."""
    from mlflow.exceptions import MlflowException

    model_id = model_uri.removeprefix("models:/")
    if "/" in model_id or "@" in model_id:  # a registered name, not a logged model's id
        return
    try:
        mlflow.get_logged_model(model_id)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise UserError(
            f"{EXPORT_DIR / architecture / 'model_uri.txt'} names {model_uri}, which the "
            f"tracking store {mlflow.get_tracking_uri()} does not hold (exported against "
            f"another store, or the store was reset): log it here with "
            f"`dvc repro -f export@{architecture}`, then `dvc repro promote`") from None


if __name__ == "__main__":
    stage_app(__doc__, main)()
