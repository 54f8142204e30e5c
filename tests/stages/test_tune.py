"""The tune stage on a tiny keyword task: studies complete, prune, fail a trial, resume after
kills, and share one study between two worker processes through a real PostgreSQL server."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from helpers import PROJECT_ROOT, keyword_data
from mlflow.tracking import MlflowClient

from pipeline import tune
from pipeline.core.config import load_params, read_params
from pipeline.core.io import read_json
from pipeline.core.training import final_model_params

ARCH = "gru"
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)



def write_params(root: Path, **tune_overrides) -> None:
    params = read_params(PROJECT_ROOT / "params.small.yaml")
    params["prepare"].update(vocab_size=20, maxlen=16)
    params["lessons"].update(maxlens=[8, 16], gradient_timesteps=16)  # no longer than maxlen
    params["train"].update(bucket_width=4, jit_compile=False, max_epochs=2)
    params["tune"].update({"n_trials": 3, "startup_trials": 1, "warmup_epochs": 0,
                           **tune_overrides})
    params["search_spaces"][ARCH] = {"learning_rate": {"low": 0.001, "high": 0.05, "log": True},
                                     "units": {"low": 4, "high": 8}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A directory holding params.yaml and data/prepared, with MLflow in a temporary store."""
    prepared = tmp_path / "data/prepared"
    prepared.mkdir(parents=True)
    for split, (n, seed) in {"train": (192, 0), "val": (64, 1), "test": (64, 2)}.items():
        x, y = keyword_data(n, seed)
        np.savez(prepared / f"{split}.npz", x=x, y=y, id=np.arange(n))
    write_params(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv(tune.STORAGE_ENV, raising=False)
    return tmp_path


def worker(root: Path, *args: str) -> subprocess.Popen:
    """`python -m pipeline.tune gru` in `root`, its output in a file of its own (a pipe nobody
    reads fills up and blocks the worker); `finish` waits for it and returns that output."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    log = root / f"worker-{time.monotonic_ns()}.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "pipeline.tune", ARCH, *args],
                                   cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    process.log = log
    return process


def finish(process: subprocess.Popen, timeout: int = 900) -> str:
    """Wait for a worker to exit 0 and return its output. The timeout only guards against a hung
    worker: under the other pytest-xdist worker's load a tiny study has taken minutes."""
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        code = f"still running after {timeout} s"
    output = process.log.read_text()
    assert code == 0, f"tune worker: {code}\n{output[-6000:]}"
    return output


def load_study(root: Path, storage) -> optuna.Study:
    if isinstance(storage, str):
        storage = tune.open_storage(storage)
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def child_runs(tracking_uri: str) -> list:
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(tune.EXPERIMENT)
    return client.search_runs([experiment.experiment_id], "tags.trial != ''")


@pytest.mark.slow  # two tune runs, three trials trained
def test_a_tiny_study_completes_is_logged_and_feeds_the_train_stage(project):
    tune.main(ARCH)
    result = read_json(project / "tuned/gru.json")
    assert result["tuned"] and result["trials"]["complete"] >= 1
    assert sum(result["trials"][s] for s in ("complete", "pruned")) == 3
    trained, tuned = final_model_params(load_params(), ARCH, project / "tuned")
    assert tuned and trained.learning_rate == result["hyperparameters"]["learning_rate"]
    assert trained.hyperparameters["units"] == result["hyperparameters"]["units"]
    assert 0.001 <= trained.learning_rate <= 0.05 and 4 <= trained.hyperparameters["units"] <= 8
    metrics = read_json(project / "metrics/tune/gru.json")
    assert metrics["best_val_accuracy"] == result["best_value"]

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    (parent,) = client.search_runs(
        [client.get_experiment_by_name(tune.EXPERIMENT).experiment_id], "tags.study != '' "
        "and attributes.run_name = 'tune-gru'")
    assert parent.data.metrics["best_val_accuracy"] == result["best_value"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"optimization_history.png", "trials.csv", "best_params.json"} <= artifacts
    children = child_runs(os.environ["MLFLOW_TRACKING_URI"])
    assert len(children) == 3
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["state"] in ("COMPLETE", "PRUNED")
        assert set(child.data.params) == {"learning_rate", "units"}
        assert client.get_metric_history(child.info.run_id, "val_accuracy")

    # Run again: the study is already complete, so nothing is trained and the result holds.
    tune.main(ARCH)
    assert read_json(project / "tuned/gru.json") == result
    assert len(child_runs(os.environ["MLFLOW_TRACKING_URI"])) == 3


def test_zero_trials_trains_with_the_params_defaults(project):
    write_params(project, n_trials=0)
    tune.main(ARCH)
    result = read_json(project / "tuned/gru.json")
    assert result["tuned"] is False
    defaults = load_params().model(ARCH)
    assert final_model_params(load_params(), ARCH, project / "tuned") == (defaults, False)
    assert not (project / "optuna").exists()


@pytest.mark.slow  # four trials trained
@pytest.mark.filterwarnings("ignore:Fixed parameter")  # the enqueued values are out of range
def test_a_hopeless_trial_is_pruned_and_a_nan_trial_fails_without_stopping_the_study(
        project, monkeypatch):
    def build_model(architecture, vocab_size, maxlen, **hyperparameters):
        model = tune.build_model.__wrapped__(architecture, vocab_size, maxlen, **hyperparameters)
        if hyperparameters["units"] == 3:  # the marked trial: its output, so its loss, is NaN
            model.get_layer("probability").bias.assign([np.nan])
        return model

    build_model.__wrapped__ = tune.build_model
    monkeypatch.setattr(tune, "build_model", build_model)
    write_params(project, n_trials=3)
    params = tune.load_params()
    storage = tune.open_storage(str(project / "optuna/gru.journal"))
    study, _ = tune.open_study(tune.study_name(ARCH, params, tune.tracking.data_hash(
        project / "data/prepared")), storage, params)
    study.enqueue_trial({"learning_rate": 0.05, "units": 8})  # learns: completes
    study.enqueue_trial({"learning_rate": 1e-9, "units": 4})  # learns nothing: pruned
    study.enqueue_trial({"learning_rate": 0.05, "units": 3})  # NaN loss: fails
    tune.main(ARCH)
    states = [t.state for t in load_study(project, storage).trials]
    assert states[:3] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                          optuna.trial.TrialState.FAIL]
    assert len(states) == 4 and states[3] in FINISHED  # the study went on to its total
    by_trial = {r.data.tags["trial"]: r for r in child_runs(os.environ["MLFLOW_TRACKING_URI"])}
    assert by_trial["1"].data.tags["state"] == "PRUNED"
    assert by_trial["2"].data.tags["state"] == "FAIL" and by_trial["2"].info.status == "FAILED"
    assert read_json(project / "metrics/tune/gru.json")["trials_failed"] == 1


def wait_for_a_running_trial(process: subprocess.Popen, journal: Path, finished: int) -> list:
    """Poll the journal until `process` is in the middle of a trial after `finished` finished
    ones; return the study's trials at that moment."""
    deadline = time.monotonic() + 600  # a guard against a hung worker, as in finish()
    storage = None
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        if not journal.exists():
            continue
        storage = storage or tune.open_storage(str(journal))
        if not optuna.get_all_study_summaries(storage):
            continue
        trials = load_study(journal.parent, storage).trials
        if sum(t.state in FINISHED for t in trials) >= finished and any(
                t.state == optuna.trial.TrialState.RUNNING
                and t.user_attrs.get("pipeline.pid") == str(process.pid) for t in trials):
            return trials
    process.kill()
    process.wait()
    pytest.fail(f"worker never ran trial {finished + 1}:\n{process.log.read_text()[-6000:]}")


@pytest.mark.slow  # four tune workers, three of them SIGKILLed
def test_a_study_killed_three_times_keeps_its_finished_trials_and_completes(project):
    write_params(project, n_trials=4)
    journal = project / "optuna/gru.journal"
    finished_before, killed = {}, []
    for finished in (0, 1, 3):  # in the enqueued defaults trial, then in later ones
        process = worker(project)
        trials = wait_for_a_running_trial(process, journal, finished)
        process.send_signal(signal.SIGKILL)
        process.wait()
        finished_before.update({t.number: t for t in trials if t.state in FINISHED})
        killed += [t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING
                   and t.user_attrs["pipeline.pid"] == str(process.pid)]

    last = worker(project)
    finish(last)
    after = load_study(project, tune.open_storage(str(journal))).trials
    assert [t.number for t in after] == list(range(len(after)))  # none lost or duplicated
    for number, trial in finished_before.items():  # kept as they were, not retrained
        assert (after[number].state, after[number].params, after[number].value) == (
            trial.state, trial.params, trial.value)
    assert len(killed) == 3 and all(after[n].state == optuna.trial.TrialState.FAIL
                                    for n in killed)  # not counted as finished
    finished = [t for t in after if t.state in FINISHED]
    assert len(finished) == 4 and len(after) == 4 + 3
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 4
    defaults = load_params().model(ARCH)  # the killed defaults trial was run again
    assert {"learning_rate": defaults.learning_rate,
            "units": defaults.hyperparameters["units"]} in [t.params for t in finished]
    result = read_json(project / "tuned/gru.json")
    assert result["trials"] == {"complete": sum(t.state == optuna.trial.TrialState.COMPLETE
                                                for t in finished),
                                "pruned": sum(t.state == optuna.trial.TrialState.PRUNED
                                              for t in finished),
                                "failed": 3, "running": 0}
    logged = sorted(int(r.data.tags["trial"]) for r in child_runs(
        os.environ["MLFLOW_TRACKING_URI"]))
    assert logged == [t.number for t in finished]  # each finished trial logged once

    # The same study, never interrupted, makes the same trials in the same order.
    (project / "optuna").rename(project / "optuna-killed")
    uninterrupted = worker(project)
    finish(uninterrupted)
    again = load_study(project, tune.open_storage(str(journal))).trials
    assert [(t.params, t.state, t.value) for t in again] == [
        (t.params, t.state, t.value) for t in finished]


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL cluster, run as the postgres user; yields its URL."""
    if shutil.which("pg_ctl") is None:
        pytest.fail("pg_ctl not found: install Debian's postgresql package (.ci/run does)")
    cluster = Path(tempfile.mkdtemp(prefix="tune-pg-"))  # pytest's tmp dirs are root-only
    as_postgres = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(cluster, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pg_ctl = [*as_postgres, "pg_ctl", "-D", str(cluster / "data")]
    subprocess.run([*as_postgres, "initdb", "-D", str(cluster / "data"), "-A", "trust",
                    "-U", "postgres"], check=True, capture_output=True)
    subprocess.run([*pg_ctl, "-w", "-l", str(cluster / "log"), "-o",
                    f"-p {port} -k {cluster} -h 127.0.0.1", "start"], check=True,
                   capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(cluster, ignore_errors=True)


@pytest.mark.slow  # a PostgreSQL server and two tune workers
def test_two_workers_share_one_study_through_postgresql(project, postgres):
    write_params(project, n_trials=4)
    # MLflow's store is created once up front, as a real setup would before starting workers.
    tune.tracking.setup(tune.EXPERIMENT)
    workers = [worker(project, "--storage", postgres) for _ in range(2)]
    for process in workers:
        finish(process)
    study = load_study(project, postgres)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(len(numbers)))  # none lost, none duplicated
    finished = [t for t in study.trials if t.state in FINISHED]
    # Trials already running when the study reached its total still finish and are kept.
    assert 4 <= len(finished) <= 5 and len(finished) == len(study.trials)
    logged = sorted(int(r.data.tags["trial"]) for r in child_runs(
        os.environ["MLFLOW_TRACKING_URI"]))
    assert logged == sorted(numbers)  # each trial logged once, by the worker that ran it
    best = max(t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    assert study.best_value == best
    tune.main(ARCH, storage=postgres)  # what `dvc repro` then does: no trial left to run
    assert read_json(project / "tuned/gru.json")["best_value"] == round(best, 4)
    assert len(child_runs(os.environ["MLFLOW_TRACKING_URI"])) == len(numbers)
    parents = {r.data.tags["mlflow.parentRunId"] for r in child_runs(
        os.environ["MLFLOW_TRACKING_URI"])}
    assert len(parents) == 1  # one parent run per study, shared by the workers


@pytest.mark.slow  # a study, then the train stage in its own process
def test_the_best_trials_score_is_what_the_train_stage_reproduces(project):
    tune.main(ARCH)
    result = read_json(project / "tuned/gru.json")
    assert result["defaults_value"] <= result["best_value"]  # trial 0 is the defaults
    assert 0 <= result["defaults_test_accuracy"] <= 1
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    subprocess.run([sys.executable, "-m", "pipeline.train", ARCH], cwd=project, env=env,
                   check=True, capture_output=True)
    trained = read_json(project / "metrics/train/gru.json")
    assert trained["best_val_accuracy"] == result["best_value"]


@pytest.mark.slow  # a study stopped, then resumed to three trials
def test_a_study_the_time_guard_stops_fails_and_writes_nothing(project):
    write_params(project, n_trials=3, max_minutes=1e-4)  # ends after the first trial
    with pytest.raises(tune.UserError, match=r"stopped by tune.max_minutes .* 1 of 3 trials"):
        tune.main(ARCH)
    assert not (project / "tuned/gru.json").exists()
    write_params(project, n_trials=3)  # the guard lifted, a rerun continues the study
    tune.main(ARCH)
    study = load_study(project, str(project / "optuna/gru.journal"))
    assert len(study.trials) == 3


def test_another_schedule_names_a_new_study():
    params = load_params(PROJECT_ROOT / "params.yaml")
    names = {tune.study_name(ARCH, dataclasses.replace(
        params, train=dataclasses.replace(params.train, schedule=schedule)), "data")
        for schedule in ("plateau", "cosine")}
    assert len(names) == 2


@pytest.mark.parametrize("held_by", ["an absolute path", "a relative path (earlier versions)"])
def test_a_lock_left_by_a_worker_killed_mid_write_is_taken_over(tmp_path, monkeypatch, held_by):
    """A worker SIGKILLed inside a journal write leaves Optuna's symlink lock behind; the next
    worker must take it over, not wait forever (a relative lock target dangled, so its age was
    never read and the wait had no end)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tune, "LOCK_GRACE_S", 3)
    journal = Path("optuna/gru.journal")
    journal.parent.mkdir()
    journal.touch()
    target = str(journal.resolve() if held_by == "an absolute path" else journal)
    optuna.storages.journal.JournalFileSymlinkLock(target).acquire()  # never released
    assert os.path.islink(f"{journal}.lock")

    start = time.monotonic()
    study = optuna.create_study(storage=tune.open_storage(str(journal)), study_name="s")
    study.enqueue_trial({"x": 1.0})
    assert time.monotonic() - start < 30  # Optuna's default grace would be 30 s at the least
    assert not os.path.lexists(f"{journal}.lock")  # released after the write
    reopened = load_study(tmp_path, str(tmp_path / journal))
    assert reopened.study_name == "s" and len(reopened.trials) == 1
