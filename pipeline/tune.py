"""Stage `tune@<architecture>`: an Optuna study over search_spaces.<arch>, tracked in MLflow.

Trials train on a stratified share of the training split and are scored on the validation split
(never the test set); the pruner sees val_accuracy after every epoch. The study lives in a
storage outside DVC's outputs (default optuna/<arch>.journal), so a rerun continues it, and
several workers may share it (--storage, or OPTUNA_STORAGE: a journal file or an RDB URL such
as postgresql://user@host/db). Writes tuned/<arch>.json (what train reads) and
metrics/tune/<arch>.json.

    python -m pipeline.tune gru [--storage URL] [--n-trials N]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import keras
import numpy as np
import optuna
import sqlalchemy
import tensorflow as tf
from optuna.trial import TrialState
from optuna_integration import KerasPruningCallback
from sklearn.model_selection import train_test_split

from pipeline import UserError, run_stage, tracking
from pipeline.config import ModelParams, Params, SearchRange, load_params
from pipeline.io import write_json
from pipeline.models import build_model
from pipeline.prepare import PREPARED_DIR, load_split
from pipeline.study_tracking import EXPERIMENT, TrialLogger, log_study, parent_run_id
from pipeline.train import TUNED_DIR, compile_model, fit

log = logging.getLogger(__name__)

STORAGE_DIR = Path("optuna")
STORAGE_ENV = "OPTUNA_STORAGE"
TUNE_METRICS_DIR = Path("metrics/tune")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # the trials n_trials counts
COUNTED = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
           "failed": TrialState.FAIL, "running": TrialState.RUNNING}
# A NaN loss or a TensorFlow runtime error fails one trial; a bug in our code stops the study.
TRIAL_ERRORS = (ArithmeticError, tf.errors.OpError)


def suggest(trial: optuna.Trial, space: dict[str, SearchRange]) -> dict:
    """One value per searched key, named as in params.yaml so the winners can be used as-is."""
    values = {}
    for name, spec in space.items():
        if spec.choices is not None:
            values[name] = trial.suggest_categorical(name, list(spec.choices))
        elif isinstance(spec.low, int) and isinstance(spec.high, int):
            values[name] = trial.suggest_int(name, spec.low, spec.high, log=spec.log)
        else:
            values[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log)
    return values


def subsample(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    if fraction >= 1:
        return x, y
    keep, _ = train_test_split(np.arange(len(y)), train_size=fraction, stratify=y,
                               random_state=seed)
    return x[keep], y[keep]


class FailOnNaN(keras.callbacks.Callback):
    """Fail the trial on a NaN loss before the pruner sees the epoch (and calls it pruned)."""

    def on_epoch_end(self, epoch, logs=None):
        if not np.isfinite((logs or {}).get("loss", 0.0)):
            raise FloatingPointError(f"the training loss became NaN in epoch {epoch + 1}")


def objective(trial: optuna.Trial, architecture: str, params: Params, data: dict) -> float:
    """Best val_accuracy of one short training run with the trial's hyperparameters."""
    for key, value in tracking.process_tags().items():  # see fail_trials_of_dead_workers
        trial.set_user_attr(key, value)
    model_params = params.model(architecture).with_values(
        suggest(trial, params.search_spaces[architecture]))
    seed = params.seed + trial.number
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    trial_data = {"train": subsample(*data["train"], params.tune.train_fraction, seed),
                  "val": data["val"]}
    model = build_model(architecture, params.prepare.vocab_size, params.prepare.maxlen,
                        **model_params.hyperparameters)
    # No XLA in trials: a trial's few hundred steps would spend more time compiling each batch
    # shape than XLA saves (gru: 26 s a trial with it, 20 s without)
    trial_train = dataclasses.replace(params.train, max_epochs=params.tune.max_epochs,
                                      jit_compile=False)
    compile_model(model, model_params.learning_rate, trial_train, model_params.optimizer)
    history, _ = fit(model, trial_data, model_params, trial_train,
                     params.prepare.padding, seed,
                     callbacks=[keras.callbacks.TerminateOnNaN(), FailOnNaN(),
                                KerasPruningCallback(trial, "val_accuracy")])
    return float(history.val_accuracy.max())


def study_name(architecture: str, params: Params, data_hash: str) -> str:
    """<arch>-<hash of everything that defines the objective>; n_trials and timeout excluded,
    so raising the budget continues the study while a new search space starts a fresh one."""
    tune = params.tune
    identity = {
        "seed": params.seed, "data": data_hash,
        "defaults": params.model(architecture).as_dict(),
        "space": {k: r.as_dict() for k, r in params.search_spaces[architecture].items()},
        "prepare": vars(params.prepare), "train": vars(params.train),
        "tune": [tune.train_fraction, tune.max_epochs, tune.pruner, tune.startup_trials],
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
    return f"{architecture}-{digest.hexdigest()[:10]}"


def make_pruner(params: Params) -> optuna.pruners.BasePruner:
    tune = params.tune
    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=tune.startup_trials, n_warmup_steps=0)
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=tune.max_epochs)
    return optuna.pruners.NopPruner()


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A journal file for a plain path (safe for processes on one machine), else an RDB URL."""
    if "://" not in url:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(url)))
    if url.startswith(("postgresql://", "postgres://")):  # SQLAlchemy 2.1 would want psycopg 3
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    for attempt in range(3):  # workers starting together race to create the tables
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as err:  # SQLAlchemy raises many types for a bad URL or server
            if attempt == 2:
                raise UserError(f"cannot open the Optuna storage {_without_password(url)}: "
                                f"{err.__class__.__name__}: {str(err)[:300]}") from None
            time.sleep(1 + attempt)


def _without_password(url: str) -> str:
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


def open_study(name: str, storage, params: Params) -> tuple[optuna.Study, bool]:
    """(study, whether this call created it). A worker joining a study draws its own samples."""
    sampler = optuna.samplers.TPESampler(seed=params.seed,
                                         n_startup_trials=params.tune.startup_trials)
    try:
        return optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                   pruner=make_pruner(params), direction="maximize"), True
    except optuna.exceptions.DuplicatedStudyError:
        sampler = optuna.samplers.TPESampler(seed=params.seed + os.getpid(),
                                             n_startup_trials=params.tune.startup_trials)
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler,
                                 pruner=make_pruner(params)), False


def fail_trials_of_dead_workers(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker process on this host is gone.

    A killed worker (SIGKILL, OOM) leaves its trial RUNNING for good; the journal storage has
    no heartbeat to notice. Trials of live workers, and of other hosts, are left alone.
    """
    dead = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if tracking.owner_is_gone(t.user_attrs)]
    for trial in dead:
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker starting now failed it first
        log.warning("trial %d was left RUNNING by a worker that is gone: marked FAIL",
                    trial.number)
        if "fixed_params" in trial.system_attrs:  # an enqueued trial (the defaults): retry it
            study.enqueue_trial(trial.system_attrs["fixed_params"])
    return [trial.number for trial in dead]


def counts(study: optuna.Study) -> dict[str, int]:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {name: states.count(state) for name, state in COUNTED.items()}


def tuning_result(study: optuna.Study, defaults: ModelParams) -> dict:
    trials = counts(study)
    if not trials["complete"]:
        raise UserError(f"study {study.study_name}: no trial completed ({trials}); see the "
                        f"MLflow experiment {EXPERIMENT!r} for why, or widen the budget")
    best = study.best_trial
    return {"tuned": True, "study": study.study_name, "best_trial": best.number,
            "best_value": round(best.value, 4),
            "hyperparameters": defaults.with_values(best.params).as_dict(), "trials": trials}


def run_study(architecture: str, params: Params, storage_url: str) -> dict:
    data = {split: load_split(split) for split in ("train", "val")}
    data_hash = tracking.data_hash(PREPARED_DIR)
    study, created = open_study(study_name(architecture, params, data_hash),
                                open_storage(storage_url), params)
    fail_trials_of_dead_workers(study)
    if created:  # trial 0 is the params.yaml defaults, so tuning cannot pick worse ones
        defaults = params.model(architecture).as_dict()
        study.enqueue_trial({k: defaults[k] for k, r in params.search_spaces[architecture].items()
                             if r.contains(defaults[k])})
    tracking.setup(EXPERIMENT)
    identity = {"space": {k: r.as_dict() for k, r in params.search_spaces[architecture].items()},
                **{f"tune.{k}": v for k, v in vars(params.tune).items()
                   if k not in ("n_trials", "timeout_seconds")}}
    tags = tracking.reproducibility_tags(architecture, PREPARED_DIR)
    run_id = parent_run_id(study, created, tags, identity)
    trials = counts(study)
    remaining = params.tune.n_trials - trials["complete"] - trials["pruned"]
    log.info("study %s: %d trial(s) to run", study.study_name, max(remaining, 0))
    if remaining > 0:
        # Runs until the study holds n_trials finished trials (a failed one is replaced, up to
        # n_trials failures in all) or the time is up; counted in the storage, so N workers
        # stop together.
        stop_at = [optuna.study.MaxTrialsCallback(params.tune.n_trials, states=states)
                   for states in (FINISHED, (TrialState.FAIL,))]
        study.optimize(lambda trial: objective(trial, architecture, params, data),
                       timeout=params.tune.timeout_seconds, catch=TRIAL_ERRORS,
                       callbacks=[*stop_at, TrialLogger(run_id)], gc_after_trial=True)
    result = tuning_result(study, params.model(architecture))
    with tracking.resume_run(run_id):
        log_study(study, result)
    return result


def main(architecture: str, storage: str | None = None, n_trials: int | None = None) -> None:
    params = load_params()
    defaults = params.model(architecture)
    if n_trials is not None:
        params = dataclasses.replace(params, tune=dataclasses.replace(params.tune,
                                                                      n_trials=n_trials))
    started = time.perf_counter()
    if params.tune.n_trials == 0 or not params.search_spaces[architecture]:
        result = {"tuned": False, "hyperparameters": defaults.as_dict(), "best_value": None,
                  "trials": {}}
    else:
        url = storage or os.environ.get(STORAGE_ENV) or str(STORAGE_DIR / f"{architecture}.journal")
        result = run_study(architecture, params, url)
    trials = result["trials"]
    write_json(TUNE_METRICS_DIR / f"{architecture}.json", {
        "tuning_seconds": round(time.perf_counter() - started, 1),
        "best_val_accuracy": result["best_value"],
        **{f"trials_{k}": trials.get(k, 0) for k in ("complete", "pruned", "failed")}})
    write_json(TUNED_DIR / f"{architecture}.json", result)
    log.info("%s: %s", architecture, result)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("architecture", help="a name from params.yaml's architectures")
    parser.add_argument("--storage", help=f"Optuna storage: a journal file path or an RDB URL "
                        f"(default: ${STORAGE_ENV}, else optuna/<architecture>.journal)")
    parser.add_argument("--n-trials", type=int, help="the study's total, instead of "
                        "tune.n_trials (a worker stops when the study has this many)")
    args = parser.parse_args()
    run_stage(lambda: main(args.architecture, args.storage, args.n_trials))


if __name__ == "__main__":
    cli()
