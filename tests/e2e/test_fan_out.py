"""Fanning out (docs/operations.md#fanning-out), as the scheduled workflow does on its runners.

Two clones of one commit each run one architecture's job (`imdb retrain --architecture`) at
the same time, sharing a folder as DVC remote and one MLflow tracking server; then a third
clone runs the report job (`imdb retrain`). It must restore every stage the two jobs ran from
DVC's run cache, promote in the shared server, and end with the result files of a one-machine
`imdb retrain` of the same commit (a fourth clone, with its own remote and MLflow store).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import (
    HANG_GUARD_S,
    MLFLOW,
    build_archive,
    copy_project,
    free_port,
    project_env,
    result_files,
    run_ok,
    start,
)
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARCHITECTURES = ["conv1d", "dense"]
LESSONS = ["conv1d"]  # the lessons' stages are conv1d's: they go with its job
PER_ARCHITECTURE = ("tune", "train", "evaluate", "export")
MODEL = "imdb-sentiment"
RETRAIN = [sys.executable, "-m", "pipeline.cli", "retrain"]


def two_cheap_architectures(params: dict) -> None:
    params["architectures"] = ARCHITECTURES
    params["lessons"]["sequence_architectures"] = LESSONS
    params["lessons"]["gradient_architectures"] = LESSONS
    params["tune"]["n_trials"] = 0  # the defaults: tuning is test_tune.py's
    # conv1d starts from the word vectors: the jobs' pretrain runs must agree byte for byte,
    # or the report job could not restore conv1d's stages (their inputs would differ)
    params["pretrain"]["architectures"] = ["conv1d"]
    params["search_spaces"]["conv1d"].pop("embedding_dim", None)  # pretrain.dim's width
    params["models"]["conv1d"]["learning_rate"] = 0.01  # far above chance, as in
    params["train"].update(max_epochs=8, patience=8, schedule="plateau",  # test_retrain_e2e
                           clipnorm=None)
    params["hybrid"].update(recurrent="conv1d", candidate=True)


def origin_project(base: Path, env: dict) -> Path:
    """The committed project the clones come from, its default DVC remote a folder."""
    root = copy_project(base / "origin")
    params = yaml.safe_load((root / "params.yaml").read_text())
    two_cheap_architectures(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q", "-b", "main"], ["dvc", "init", "-q"],
                ["dvc", "remote", "add", "-d", "storage", str(base / "remote")],
                ["git", "add", "-A"], ["git", "commit", "-qm", "pipeline"]):
        run_ok(cmd, root, env)
    return root


def clone(origin: Path, name: str, env: dict) -> Path:
    path = origin.parent / name
    run_ok(["git", "clone", "-q", str(origin), str(path)], origin.parent, env)
    return path


def started(cmd: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    summary = {"GITHUB_STEP_SUMMARY": str(cwd.parent / f"{cwd.name}-summary.md")}
    return subprocess.Popen(cmd, cwd=cwd, env={**env, **summary}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finished(process: subprocess.Popen, timeout: int = HANG_GUARD_S) -> str:
    log = process.communicate(timeout=timeout)[0]
    assert process.returncode == 0, f"{' '.join(process.args)} failed:\n{log}"
    return log


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One `mlflow server` for the fan-out's clones, as the workflow's jobs share one."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    process = start([MLFLOW, "server", "--host", "127.0.0.1", "--port", str(port),
                     "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
                     "--artifacts-destination", str(root / "artifacts")],
                    dict(os.environ), port, root / "server.log", new_session=True)
    yield f"http://127.0.0.1:{port}"
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=60)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, server):
    """{clone name: (root, log)}: the two jobs at once (and the one-machine run beside them,
    on its own remote and store), then the report job."""
    base = tmp_path_factory.mktemp("fan_out")
    env = {k: v for k, v in project_env(build_archive(
        base / "aclImdb_v1.tar.gz", per_folder=60, unlabelled=5)).items()
        if not k.startswith("GITHUB_")}
    origin = origin_project(base, env)
    shared = {**env, "MLFLOW_TRACKING_URI": server}
    roots = {name: clone(origin, name, env) for name in (*ARCHITECTURES, "report", "one")}
    run_ok(["dvc", "remote", "modify", "--local", "storage", "url", str(base / "remote-one")],
           roots["one"], env)
    processes = {"one": started(RETRAIN, roots["one"], {**env, "MLFLOW_TRACKING_URI":
                                                       f"sqlite:///{base / 'one.db'}"})}
    try:
        processes.update({name: started([*RETRAIN, "--architecture", name], roots[name],
                                        shared) for name in ARCHITECTURES})
        logs = {name: finished(processes[name]) for name in ARCHITECTURES}
        processes["report"] = started(RETRAIN, roots["report"], shared)
        logs.update(report=finished(processes["report"]), one=finished(processes["one"]))
    finally:  # a failed job leaves no run behind: each is its own process group
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return {name: (roots[name], logs[name]) for name in roots}


def test_each_job_runs_its_architectures_stages_and_no_report(runs):
    for name in ARCHITECTURES:
        _, log = runs[name]
        for stage in PER_ARCHITECTURE:
            assert f"Running stage '{stage}@{name}'" in log, log
        for other in set(ARCHITECTURES) - {name}:
            assert f"@{other}'" not in log
        for stage in ("baseline@nbsvm", "hybrid", "report", "promote"):
            assert f"stage '{stage}'" not in log
        assert "left to the report job" in log
    # the lessons' stages go with the architecture they study
    assert "Running stage 'sequence_length@conv1d'" in runs["conv1d"][1]
    assert "Running stage 'gradients@conv1d'" in runs["conv1d"][1]


def test_the_report_job_restores_the_jobs_stages_from_the_run_cache(runs):
    _, log = runs["report"]
    restored = [f"{stage}@{name}" for name in ARCHITECTURES for stage in PER_ARCHITECTURE]
    restored += [f"{stage}@{name}" for name in LESSONS for stage in ("sequence_length",
                                                                     "gradients")]
    ran_again = [stage for stage in restored
                 if f"Stage '{stage}' is cached - skipping run" not in log]
    assert ran_again == [], (
        f"the report job ran these again instead of restoring them: {ran_again} (DVC saves "
        "no run-cache entry for a stage with a plain `cache: false` out: see tests/cli/"
        f"test_retrain.py::test_every_stage_of_an_architecture_can_be_restored...)\n{log}")
    assert "Running stage 'train@" not in log and "Running stage 'pretrain'" not in log
    for stage in ("baseline@nbsvm", "hybrid", "report", "promote"):
        assert f"Running stage '{stage}'" in log


def test_the_report_job_promotes_in_the_shared_tracking_server(runs, server):
    root, _ = runs["report"]
    decision = json.loads((root / "reports/promotion.json").read_text())
    assert decision["promoted"] and "no champion yet" in decision["reason"]
    client = MlflowClient(tracking_uri=server)
    assert client.get_model_version_by_alias(MODEL, "champion").version == decision["version"]
    # the jobs trained in the same server: the champion's lineage is all there
    experiment = client.get_experiment_by_name("imdb-sentiment")
    for name in ARCHITECTURES:
        assert client.search_runs([experiment.experiment_id],
                                  f"attributes.run_name = '{name}'"), name


def test_fanned_out_results_are_those_of_one_machine(runs):
    fanned, one = result_files(runs["report"][0]), result_files(runs["one"][0])
    assert any(path.startswith("metrics/eval/") for path in fanned)
    assert sorted(fanned) == sorted(one)
    differ = [path for path in fanned if fanned[path] != one[path]]
    assert differ == [], f"these differ from a one-machine run: {differ}"
    assert "Running stage 'train@conv1d'" in runs["one"][1]  # it trained them itself
    decisions = [json.loads((runs[name][0] / "reports/promotion.json").read_text())
                 for name in ("report", "one")]
    assert [d["candidate_architecture"] for d in decisions] == \
        [decisions[1]["candidate_architecture"]] * 2
