"""Stage `tune@<architecture>`: an Optuna study over search_spaces.<arch>, tracked in MLflow.

Every trial trains exactly as `train@<arch>` will: the whole training split, train's epochs,
early stopping and learning-rate schedule, and the same seed. So a trial's score is the score
the final model gets, and since trial 0 is the params.yaml defaults, the tuned values are never
worse on validation than the defaults. Trials are scored on the validation split (never the test
set); the pruner sees val_accuracy after every epoch and stops trials that fall behind.

The budget is a number of trials (tune.n_trials), and each trial's sampler is seeded from the
seed and the trial's number, so one worker makes the same trials on any machine, however loaded
(N workers sharing a study make them in an order set by timing: docs/tuning.md#parallel-workers).
tune.max_minutes is only a guard: a study it stops fails the stage, and a rerun continues it.
The study lives outside DVC's outputs (default optuna/<arch>.journal; --storage or OPTUNA_STORAGE
for a journal file or an RDB URL such as postgresql://user@host/db). Writes tuned/<arch>.json
(what train reads; committed to git, so a fresh clone does not tune again) and
metrics/tune/<arch>.json.

    python -m pipeline.tune gru [--storage URL] [--n-trials N]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Annotated

import keras
import mlflow
import numpy as np
import optuna
import sqlalchemy
import tensorflow as tf
import typer
from optuna.trial import TrialState
from optuna_integration import KerasPruningCallback

from pipeline import UserError
from pipeline.core import tracking
from pipeline.core.batching import predict_proba
from pipeline.core.config import ModelParams, Params, SearchRange, load_params
from pipeline.core.data import load_split
from pipeline.core.io import write_json
from pipeline.core.models import build_model
from pipeline.core.paths import PREPARED_DIR, PRETRAINED_DIR, TUNED_DIR
from pipeline.core.stage import help_text, run_stage
from pipeline.core.study_tracking import EXPERIMENT, TrialLogger, log_study, parent_run_id
from pipeline.core.training import best_epoch, compile_model, fit, start_embedding

log = logging.getLogger(__name__)

STORAGE_DIR = Path("optuna")
LOCK_GRACE_S = 30  # Optuna's default: no journal write takes that long
STORAGE_ENV = "OPTUNA_STORAGE"
TUNE_METRICS_DIR = Path("metrics/tune")
KILLED_ATTR = "killed_trials"  # study user attribute: trials whose worker died mid-trial
DEFAULTS_ROLE = {"role": "defaults"}  # the user attribute of the enqueued params.yaml trial
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


class FailOnNaN(keras.callbacks.Callback):
    """Fail the trial on a NaN loss before the pruner sees the epoch (and calls it pruned)."""

    def on_epoch_end(self, epoch, logs=None):
        if not np.isfinite((logs or {}).get("loss", 0.0)):
            raise FloatingPointError(f"the training loss became NaN in epoch {epoch + 1}")


def objective(trial: optuna.Trial, architecture: str, params: Params, data: dict) -> float:
    """Validation accuracy of the trial's hyperparameters, trained as train@<arch> trains."""
    for key, value in tracking.process_tags().items():  # see fail_trials_of_dead_workers
        trial.set_user_attr(key, value)
    model_params = params.model(architecture).with_values(
        suggest(trial, params.search_spaces[architecture]))
    keras.backend.clear_session()
    keras.utils.set_random_seed(params.seed)  # as train.main: the same start for every trial
    model = build_model(architecture, params.prepare.vocab_size, params.prepare.maxlen,
                        **model_params.hyperparameters)
    start_embedding(model, architecture, params)
    compile_model(model, model_params.learning_rate, params.train, model_params.optimizer)
    history, _ = fit(model, data, model_params, params.train, params.prepare.padding,
                     params.seed, callbacks=[keras.callbacks.TerminateOnNaN(), FailOnNaN(),
                                             KerasPruningCallback(trial, "val_accuracy")])
    if trial.user_attrs.get("role") == DEFAULTS_ROLE["role"]:
        # Recorded for the report (what tuning bought on held-out reviews); the study never
        # sees it: it ranks trials on validation accuracy alone.
        trial.set_user_attr("test_accuracy", test_accuracy(model, data["test"], params))
    return float(best_epoch(history, params.train).val_accuracy)  # what train@<arch> reports


def test_accuracy(model: keras.Model, test: tuple, params: Params) -> float:
    """Accuracy at evaluate.threshold, rounded as metrics/eval rounds it."""
    x, y = test
    probability = predict_proba(model, x, params.evaluate.batch_size, params.train.bucket_width,
                                params.prepare.padding)
    return round(float(np.mean((probability >= params.evaluate.threshold) == y)), 4)


def study_name(architecture: str, params: Params, data_hash: str) -> str:
    """<arch>-<hash of everything that defines the objective>; n_trials and max_minutes
    excluded, so raising the budget continues the study while a new search space starts afresh."""
    tune = params.tune
    identity = {
        "seed": params.seed, "data": data_hash,
        "defaults": params.model(architecture).as_dict(),
        "space": {k: r.as_dict() for k, r in params.search_spaces[architecture].items()},
        "prepare": vars(params.prepare), "train": vars(params.train),
        "tune": [tune.pruner, tune.startup_trials, tune.warmup_epochs],
    }
    if architecture in params.pretrain.architectures:  # trials start from the word vectors
        identity["pretrained"] = tracking.data_hash(PRETRAINED_DIR)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
    return f"{architecture}-{digest.hexdigest()[:10]}"


def make_pruner(params: Params) -> optuna.pruners.BasePruner:
    tune = params.tune
    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=tune.startup_trials,
                                           n_warmup_steps=tune.warmup_epochs)
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(tune.warmup_epochs, 1),
                                              max_resource=params.train.max_epochs)
    return optuna.pruners.NopPruner()


def journal_storage(path: Path) -> optuna.storages.JournalStorage:
    """The journal at `path`, locked by a symlink that a worker killed while writing cannot
    leave behind for good: after LOCK_GRACE_S untouched, the next worker takes the lock over.

    Optuna's lock is a symlink to the journal, made with the path as given: a relative path makes
    a link that dangles (it resolves beside the link), so its age cannot be read and a stale lock
    is waited on forever. The path is made absolute, and a dangling lock (stale by construction)
    is removed.
    """
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = Path(f"{path}.lock")
    if lock.is_symlink() and not lock.exists():
        log.warning("removed %s, a stale lock that points nowhere", lock)
        lock.unlink(missing_ok=True)
    journal = optuna.storages.journal
    return optuna.storages.JournalStorage(journal.JournalFileBackend(
        str(path), journal.JournalFileSymlinkLock(str(path), grace_period=LOCK_GRACE_S)))


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A journal file for a plain path (safe for processes on one machine), else an RDB URL."""
    if "://" not in url:
        return journal_storage(Path(url))
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


def sampler_for_next_trial(study: optuna.Study, params: Params) -> optuna.samplers.TPESampler:
    """TPE seeded from the seed and the number of the trial it will sample.

    A fresh sampler per trial makes each trial's values a function of the seed and the
    trials before it, so a study run on a slower machine makes the same trials. Trials of a
    killed worker do not count (TPE ignores failed trials too), so a resumed study samples
    what the uninterrupted one would have. A worker joining others mid-trial adds its pid, so
    two never sample alike.
    """
    trials = study.get_trials(deepcopy=False)
    others_running = any(t.state == TrialState.RUNNING for t in trials)
    killed = len(study.user_attrs.get(KILLED_ATTR, []))
    seed = params.seed + len(trials) - killed + (os.getpid() if others_running else 0)
    return optuna.samplers.TPESampler(seed=seed % 2**32,
                                      n_startup_trials=params.tune.startup_trials)


def open_study(name: str, storage, params: Params) -> tuple[optuna.Study, bool]:
    """(study, whether this call created it)."""
    try:
        return optuna.create_study(study_name=name, storage=storage, pruner=make_pruner(params),
                                   direction="maximize"), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage,
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
        study.set_user_attr(KILLED_ATTR, [*study.user_attrs.get(KILLED_ATTR, []), trial.number])
        log.warning("trial %d was left RUNNING by a worker that is gone: marked FAIL",
                    trial.number)
        if "fixed_params" in trial.system_attrs:  # an enqueued trial (the defaults): retry it
            role = trial.user_attrs.get("role")
            study.enqueue_trial(trial.system_attrs["fixed_params"],
                                user_attrs={"role": role} if role else None)
    return [trial.number for trial in dead]


def counts(study: optuna.Study) -> dict[str, int]:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {name: states.count(state) for name, state in COUNTED.items()}


def finished(trials: dict[str, int]) -> int:
    """Trials that count toward tune.n_trials: complete or pruned."""
    return trials["complete"] + trials["pruned"]


def tuning_result(study: optuna.Study, defaults: ModelParams) -> dict:
    """What train reads (hyperparameters) and what the report shows; no timings, so the same
    trials give the same file."""
    trials = counts(study)
    if not trials["complete"]:
        raise UserError(f"study {study.study_name}: no trial completed ({trials}); see the "
                        f"MLflow experiment {EXPERIMENT!r} for why, or widen the budget")
    best = study.best_trial  # the first of equals: the defaults (trial 0) win a tie
    baseline = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.user_attrs.get("role") == DEFAULTS_ROLE["role"]]
    return {"tuned": True, "study": study.study_name, "best_trial": best.number,
            "best_value": round(best.value, 4),
            "defaults_value": round(baseline[0].value, 4) if baseline else None,
            "defaults_test_accuracy": baseline[0].user_attrs.get("test_accuracy")
            if baseline else None,
            "hyperparameters": defaults.with_values(best.params).as_dict(), "trials": trials}


def enqueue_defaults(study: optuna.Study, architecture: str, params: Params) -> None:
    """Trial 0: the params.yaml defaults, so tuning is measured against them."""
    defaults = params.model(architecture).as_dict()
    space = params.search_spaces[architecture]
    study.enqueue_trial({k: defaults[k] for k, r in space.items() if r.contains(defaults[k])},
                        user_attrs=DEFAULTS_ROLE)


def optimize(study: optuna.Study, architecture: str, params: Params, data: dict,
             run_id: str) -> None:
    """Run trials until the study holds n_trials finished ones (a failed one is replaced, up
    to n_trials failures). Counted in the storage, so N workers stop together."""
    budget, guard = params.tune.n_trials, params.tune.max_minutes
    logger, started, ran = TrialLogger(run_id), time.monotonic(), False
    trials = counts(study)
    log.info("study %s: %d of %d trial(s) finished", study.study_name, finished(trials), budget)
    while finished(trials) < budget and trials["failed"] < budget:
        # The guard never stops a study before this call has run a trial.
        if ran and guard and time.monotonic() - started > 60 * guard:
            raise UserError(
                f"study {study.study_name} stopped by tune.max_minutes ({guard:g}) with "
                f"{finished(trials)} of {budget} trials finished; nothing was written. "
                "The finished trials are kept: rerun `dvc repro` to continue, or raise "
                "tune.max_minutes")
        study.sampler = sampler_for_next_trial(study, params)
        study.optimize(lambda trial: objective(trial, architecture, params, data), n_trials=1,
                       catch=TRIAL_ERRORS, callbacks=[logger], gc_after_trial=True)
        ran, trials = True, counts(study)


def run_study(architecture: str, params: Params, storage_url: str) -> dict:
    data = {split: load_split(split) for split in ("train", "val", "test")}
    data_hash = tracking.data_hash(PREPARED_DIR)
    study, created = open_study(study_name(architecture, params, data_hash),
                                open_storage(storage_url), params)
    fail_trials_of_dead_workers(study)
    if created:
        enqueue_defaults(study, architecture, params)
    tracking.setup(EXPERIMENT)
    identity = {"space": {k: r.as_dict() for k, r in params.search_spaces[architecture].items()},
                **{f"tune.{k}": v for k, v in vars(params.tune).items()
                   if k not in ("n_trials", "max_minutes")}}
    tags = tracking.reproducibility_tags(architecture, PREPARED_DIR)
    run_id = parent_run_id(study, created, tags, identity)
    started = time.perf_counter()
    optimize(study, architecture, params, data, run_id)
    result = tuning_result(study, params.model(architecture))
    with tracking.resume_run(run_id):
        log_study(study, result)
        mlflow.log_metric("tuning_seconds", round(time.perf_counter() - started, 1))
    return result


def main(architecture: str, storage: str | None = None, n_trials: int | None = None) -> None:
    params = load_params()
    defaults = params.model(architecture)
    if n_trials is not None:
        params = dataclasses.replace(params, tune=dataclasses.replace(params.tune,
                                                                      n_trials=n_trials))
    if params.tune.n_trials == 0 or not params.search_spaces[architecture]:
        result = {"tuned": False, "hyperparameters": defaults.as_dict(), "best_value": None,
                  "trials": {}}
    else:
        url = storage or os.environ.get(STORAGE_ENV) or str(STORAGE_DIR / f"{architecture}.journal")
        result = run_study(architecture, params, url)
    trials = result["trials"]
    write_json(TUNE_METRICS_DIR / f"{architecture}.json", {
        "best_val_accuracy": result["best_value"],
        "defaults_val_accuracy": result.get("defaults_value"),
        **{f"trials_{k}": trials.get(k, 0) for k in ("complete", "pruned", "failed")}})
    write_json(TUNED_DIR / f"{architecture}.json", result)
    log.info("%s: %s", architecture, result)


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(help=help_text(__doc__))
def cli(
    architecture: Annotated[str, typer.Argument(
        help="A name from params.yaml's architectures.")],
    storage: Annotated[str | None, typer.Option(
        help=f"Optuna storage: a journal file path or an RDB URL (default: ${STORAGE_ENV}, "
             "else optuna/<architecture>.journal).")] = None,
    n_trials: Annotated[int | None, typer.Option(
        "--n-trials", help="The study's total, instead of tune.n_trials (a worker stops when "
                           "the study has this many).")] = None,
) -> None:
    run_stage(lambda: main(architecture, storage, n_trials))


if __name__ == "__main__":
    app()
