"""MLflow at the edge of a study: one parent run per study, one child run per trial.

Every worker of a study, and every resumed run, logs under the same parent run; its id is kept
in the study's user attributes, so it travels with the Optuna storage.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from pathlib import Path

import mlflow
import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline.core import tracking

log = logging.getLogger(__name__)

EXPERIMENT = "imdb-sentiment-tuning"
PARENT_RUN_ATTR = "mlflow_parent_run_id"


def _ms(moment) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


class TrialLogger:
    """Study callback: each finished trial becomes a child run of the study's parent run."""

    def __init__(self, parent_run_id: str):
        self.client = mlflow.MlflowClient()
        self.parent = self.client.get_run(parent_run_id)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        run = self.client.create_run(
            self.parent.info.experiment_id, start_time=_ms(trial.datetime_start),
            run_name=f"trial-{trial.number}",
            tags={**tracking.lineage_tags(), "mlflow.parentRunId": self.parent.info.run_id,
                  "study": study.study_name, "trial": str(trial.number),
                  "state": trial.state.name})
        step_time = _ms(trial.datetime_complete) or 0
        metrics = [mlflow.entities.Metric("val_accuracy", value, step_time, step)
                   for step, value in sorted(trial.intermediate_values.items())]
        if trial.state == TrialState.COMPLETE:
            metrics.append(mlflow.entities.Metric("best_val_accuracy", trial.value, step_time, 0))
        self.client.log_batch(run.info.run_id, metrics=metrics, params=[
            mlflow.entities.Param(k, str(v)) for k, v in trial.params.items()])
        self.client.set_terminated(run.info.run_id, end_time=_ms(trial.datetime_complete),
                                   status="FAILED" if trial.state == TrialState.FAIL
                                   else "FINISHED")


def parent_run_id(study: optuna.Study, created: bool, tags: dict, identity: dict) -> str:
    """The study's one parent run, shared by every worker and every resumed run."""
    client = mlflow.MlflowClient()
    deadline = time.monotonic() + (0 if created else 30)
    while (run_id := study.user_attrs.get(PARENT_RUN_ATTR)) is None:
        if time.monotonic() >= deadline:  # the creator sets it within a second
            break
        time.sleep(0.5)
    if run_id is not None:
        try:
            client.get_run(run_id)
            return run_id
        except mlflow.exceptions.MlflowException:
            log.info("parent run %s is not in this tracking store; starting another", run_id)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    run = client.create_run(experiment.experiment_id, run_name=f"tune-{tags['architecture']}",
                            tags={**tracking.lineage_tags(), **tags, "study": study.study_name})
    client.log_batch(run.info.run_id, params=[mlflow.entities.Param(k, str(v)[:6000])
                                              for k, v in identity.items()])
    study.set_user_attr(PARENT_RUN_ATTR, run.info.run_id)
    return run.info.run_id


def log_study(study: optuna.Study, result: dict) -> None:
    """On the active parent run: best params and value, trial counts, plots, trials table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    mlflow.log_metrics({"best_val_accuracy": result["best_value"],
                        **{f"trials_{k}": v for k, v in result["trials"].items()}})
    mlflow.set_tags({f"best.{k}": v for k, v in study.best_params.items()})
    mlflow.log_dict({"best_trial": result["best_trial"], "params": study.best_params},
                    "best_params.json")
    for name, plot in (("optimization_history", plots.plot_optimization_history),
                       ("param_importances", plots.plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                figure = plot(study).figure
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            log.info("no %s plot: %s", name, err)  # importances need 2+ varied trials
            continue
        mlflow.log_figure(figure, f"{name}.png")
        plt.close(figure)
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "trials.csv"
        study.trials_dataframe().to_csv(table, index=False)
        mlflow.log_artifact(str(table))
