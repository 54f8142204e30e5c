import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import UserError
from pipeline.core import tracking


def test_local_sqlite_store_is_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_tracking_uri_from_the_environment_wins(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking.tracking_uri() == "http://mlflow.example:5000"


def test_unreachable_tracking_server_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(UserError, match="cannot reach the MLflow tracking store at "
                                        "http://127.0.0.1:9.*unset MLFLOW_TRACKING_URI"):
        tracking.setup()


def test_data_hash_changes_with_content_and_names(tmp_path):
    (tmp_path / "a.npz").write_bytes(b"one")
    first = tracking.data_hash(tmp_path)
    assert tracking.data_hash(tmp_path) == first
    (tmp_path / "a.npz").write_bytes(b"two")
    second = tracking.data_hash(tmp_path)
    (tmp_path / "a.npz").rename(tmp_path / "b.npz")
    assert len({first, second, tracking.data_hash(tmp_path)}) == 3


DOOMED_STAGE = """
import time
import mlflow
from pipeline.core import tracking
tracking.setup("stages")
print(mlflow.start_run(run_name="doomed").info.run_id, flush=True)
time.sleep(300)
"""


@pytest.mark.slow  # a stage process SIGKILLed
def test_a_killed_stages_run_is_marked_killed_by_the_next_setup(monkeypatch, tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_CONTEXT", raising=False)
    stage = subprocess.Popen([sys.executable, "-c", DOOMED_STAGE], stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).parents[2])
    try:
        doomed = stage.stdout.readline().strip()
        assert doomed, "the stage did not start its run"
        client = mlflow.MlflowClient(uri)
        experiment_id = client.get_run(doomed).info.experiment_id
        live = client.create_run(experiment_id, tags=tracking.process_tags())
        elsewhere = client.create_run(experiment_id, tags={tracking.HOST_TAG: "another-host",
                                                           tracking.PID_TAG: str(stage.pid)})
        untagged = client.create_run(experiment_id)
    finally:
        stage.send_signal(signal.SIGKILL)
        stage.wait()
    assert client.get_run(doomed).data.tags[tracking.PID_TAG] == str(stage.pid)
    assert client.get_run(doomed).info.status == "RUNNING"

    tracking.setup("stages")  # the next stage starts

    assert client.get_run(doomed).info.status == "KILLED"
    assert client.get_run(doomed).info.end_time is not None
    for run in (live, elsewhere, untagged):
        assert client.get_run(run.info.run_id).info.status == "RUNNING"
    assert tracking.mark_killed_runs() == []


def test_setup_tags_the_runs_it_starts_with_host_and_pid(monkeypatch, tmp_path):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_RUN_CONTEXT", '{"team": "nlp"}')
    tracking.setup("stages")
    with mlflow.start_run() as run:
        tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags[tracking.PID_TAG] == str(os.getpid())
    assert tags[tracking.HOST_TAG] == socket.gethostname()
    assert tags["team"] == "nlp"  # a context the user set is kept


def test_a_zombie_or_missing_process_is_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    status = Path(f"/proc/{child.pid}/status")
    deadline = time.monotonic() + 30
    while "\nState:\tZ" not in status.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # exited but not reaped (no poll/wait yet): a zombie
    assert not tracking.process_alive(child.pid)
    child.wait()
    assert not tracking.process_alive(child.pid)
    assert tracking.process_alive(os.getpid())


def test_a_lost_tracking_server_is_told_apart_from_other_errors(monkeypatch):
    import mlflow

    refused = ("API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/log-batch failed with "
               "exception HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded "
               "... [Errno 111] Connection refused")
    try:  # what `with mlflow.start_run()` raises: ending the run fails while handling the loss
        try:
            raise mlflow.exceptions.MlflowException(refused)
        except mlflow.exceptions.MlflowException:
            raise mlflow.exceptions.MlflowException("could not end the run")  # noqa: B904
    except mlflow.exceptions.MlflowException as err:
        lost = err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    message = tracking.lost_server_message(lost)
    assert message.startswith("lost the MLflow tracking server at http://127.0.0.1:5000 mid-run "
                              "(nothing is listening there (connection refused))")
    assert "rerun `dvc repro`" in message
    assert tracking.lost_server_message(ValueError("Connection refused")) is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    assert tracking.lost_server_message(lost) is None


@pytest.mark.slow  # a stage process SIGKILLed while it holds a resumed run
def test_a_resumed_run_belongs_to_the_process_that_resumed_it(monkeypatch, tmp_path):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_RUN_CONTEXT", raising=False)
    tracking.setup("stages")
    client = mlflow.MlflowClient()
    experiment_id = mlflow.get_experiment_by_name("stages").experiment_id
    gone = 2**22 + 1  # above Linux's largest pid_max: no such process
    created = client.create_run(experiment_id, tags={tracking.HOST_TAG: socket.gethostname(),
                                                     tracking.PID_TAG: str(gone)})
    client.set_terminated(created.info.run_id, "FINISHED")  # e.g. a finished training run

    with tracking.resume_run(created.info.run_id):  # evaluate, export, tune's parent run
        assert client.get_run(created.info.run_id).info.status == "RUNNING"
        assert tracking.mark_killed_runs() == []  # another stage starting: this one is live
        tags = client.get_run(created.info.run_id).data.tags
        assert tags[tracking.PID_TAG] == str(os.getpid())
        assert tags[tracking.HOST_TAG] == socket.gethostname()
    assert client.get_run(created.info.run_id).info.status == "FINISHED"

    resumer = subprocess.Popen([sys.executable, "-c", RESUMING_STAGE, created.info.run_id],
                               stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert resumer.stdout.readline().strip() == "resumed"
    finally:
        resumer.send_signal(signal.SIGKILL)
        resumer.wait()
    assert tracking.mark_killed_runs() == [created.info.run_id]  # killed while resumed
    assert client.get_run(created.info.run_id).info.status == "KILLED"


RESUMING_STAGE = """
import sys, time
from pipeline.core import tracking
tracking.setup("stages")
tracking.resume_run(sys.argv[1])
print("resumed", flush=True)
time.sleep(300)
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A committed project: code, params, and an output file the pipeline rewrites."""
    repo = tmp_path / "repo"
    (repo / "pipeline").mkdir(parents=True)
    (repo / "metrics").mkdir()
    (repo / "pipeline/train.py").write_text("print('train')\n")
    (repo / "params.yaml").write_text("seed: 1\n")
    (repo / "dvc.yaml").write_text("stages: {}\n")
    (repo / "metrics/x.json").write_text("{}\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "x")
    monkeypatch.chdir(repo)
    yield repo
    tracking._git_tags.cache_clear()


def head(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def fresh_git_tags() -> dict[str, str]:
    tracking._git_tags.cache_clear()
    return tracking.git_tags()


def test_changed_outputs_leave_the_commit_clean(repo):
    (repo / "metrics/x.json").write_text('{"accuracy": 0.9}\n')  # what a stage writes
    (repo / "metrics/new.json").write_text("{}\n")
    (repo / "dvc.lock").write_text("schema: '2.0'\n")
    tags = fresh_git_tags()
    assert tags == {"git_commit": head(repo), "git_code_differs": "false",
                    "git_params_differ": "false"}
    assert not tracking.git_commit().endswith("-dirty")


def test_changed_or_new_code_differs(repo):
    (repo / "pipeline/train.py").write_text("print('changed')\n")
    assert fresh_git_tags() == {"git_commit": head(repo), "git_code_differs": "true",
                                "git_params_differ": "false"}
    git(repo, "checkout", "--", "pipeline/train.py")
    (repo / "pipeline/new_stage.py").write_text("")  # untracked code counts too
    assert fresh_git_tags()["git_code_differs"] == "true"


def test_changed_params_differ(repo):
    (repo / "params.yaml").write_text("seed: 2\n")
    assert fresh_git_tags() == {"git_commit": head(repo), "git_code_differs": "false",
                                "git_params_differ": "true"}


def test_outside_git_the_commit_is_unknown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert fresh_git_tags()["git_commit"] == "unknown"
    tracking._git_tags.cache_clear()


def test_git_is_asked_once_per_process(repo, monkeypatch):
    first = fresh_git_tags()
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("git asked again"))
    assert tracking.git_tags() == first


def test_every_run_carries_the_commit_and_the_package_versions(repo, monkeypatch):
    import mlflow

    (repo / "params.yaml").write_text("seed: 2\n")
    tracking._git_tags.cache_clear()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{repo.parent / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_RUN_CONTEXT", raising=False)
    tracking.setup("stages")
    with mlflow.start_run() as run:
        tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["git_commit"] == head(repo)
    assert tags["git_code_differs"] == "false" and tags["git_params_differ"] == "true"
    for name in ("python", "tensorflow", "keras", "numpy", "pandas", "scikit-learn", "mlflow",
                 "optuna", "dvc"):
        assert tags[f"version.{name}"] != tracking.NOT_INSTALLED, name
    assert tags["version.numpy"] == __import__("numpy").__version__
    lineage = tracking.lineage_tags()
    assert tracking.reproducibility_tags("gru", repo / "metrics").items() >= lineage.items()


def test_a_missing_package_is_not_installed(monkeypatch):
    monkeypatch.setitem(tracking.VERSIONED_PACKAGES, "nothing", ("no-such-distribution-xyz",))
    tracking.package_versions.cache_clear()
    try:
        assert tracking.package_versions()["version.nothing"] == tracking.NOT_INSTALLED
    finally:
        tracking.package_versions.cache_clear()
