"""MLflow at the edge: where runs go, and the tags that make each run reproducible."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import mlflow
import requests

from pipeline import UserError
from pipeline.core.io import read_json

EXPERIMENT = "imdb-sentiment"
DEFAULT_STORE = Path("mlflow.db")
HOST_TAG = "pipeline.host"
PID_TAG = "pipeline.pid"

log = logging.getLogger(__name__)

# Fail in seconds, not minutes, when a remote tracking server is down.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else a SQLite store in the project (what `mlflow ui` reads)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_STORE.resolve()}"


def setup(experiment: str = EXPERIMENT) -> None:
    """Point MLflow at the store, tag this process's new runs, and close runs of dead processes."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment(experiment)
    except Exception as err:  # MLflow raises several types for an unreachable or bad store
        raise UserError(
            f"cannot reach the MLflow tracking store at {uri}: {why_unreachable(err)}. "
            "Start that server, or unset MLFLOW_TRACKING_URI to use the local store in "
            "./mlflow.db") from None
    tag_new_runs()
    mark_killed_runs()


def why_unreachable(err: Exception) -> str:
    text = " ".join(str(err).split())
    if "Connection refused" in text:
        return "nothing is listening there (connection refused)"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "it closed the connection without an answer"
    if "timed out" in text.lower() or "Timeout" in text:
        return "it did not answer in time"
    if "Name or service not known" in text or "NameResolutionError" in text:
        return "its host name is not known"
    return f"{err.__class__.__name__}: {text[:300]}"


def lost_server_message(err: BaseException) -> str | None:
    """One line for an error raised because a remote tracking server stopped answering mid-run;
    None for any other error. MLflow wraps the requests error in an MlflowException, and a
    `with mlflow.start_run()` block adds its own failure to end the run: the whole chain counts.
    """
    uri = tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return None
    error, seen = err, set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error)
        if isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)) \
                or (isinstance(error, mlflow.exceptions.MlflowException)
                    and ("Max retries exceeded" in text or "Connection" in text)):
            return (f"lost the MLflow tracking server at {uri} mid-run "
                    f"({why_unreachable(error)}): the stage stopped unfinished. Start that server "
                    "again and rerun `dvc repro`")
        error = error.__cause__ or error.__context__
    return None


def process_tags() -> dict[str, str]:
    """Which process owns a run: lets a later stage tell a killed run from a running one."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def tag_new_runs() -> None:
    """Add process_tags() and lineage_tags() to every run mlflow.start_run creates from now on
    in this process.

    MLflow's own MLFLOW_RUN_CONTEXT variable (a JSON dict of tags) does this for each new run;
    tags a caller passes to start_run still win. A resumed run (start_run(run_id=...)) keeps the
    tags of the process that created it: resume with resume_run() instead.
    """
    context = json.loads(os.environ.get("MLFLOW_RUN_CONTEXT") or "{}")
    os.environ["MLFLOW_RUN_CONTEXT"] = json.dumps({**context, **process_tags(),
                                                    **lineage_tags()})


def resume_run(run_id: str) -> mlflow.ActiveRun:
    """mlflow.start_run(run_id=...), re-tagged with this process: the one the run now depends on.

    Without it a resumed run keeps the tags of the (long gone) process that created it, so the
    next stage's setup() would mark it KILLED while it is live, and not at all once this dies.
    """
    run = mlflow.start_run(run_id=run_id)
    mlflow.set_tags(process_tags())
    return run


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: gone for our purpose
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" not in status


def owner_is_gone(tags: dict) -> bool:
    """Whether the process named by process_tags() ran on this host and is no longer alive.

    Unknown when the tags are missing or name another host: then False, the owner may live.
    """
    pid = str(tags.get(PID_TAG, ""))
    return (tags.get(HOST_TAG) == socket.gethostname() and pid.isdigit()
            and not process_alive(int(pid)))


def mark_killed_runs() -> list[str]:
    """Mark RUNNING runs started on this host by a process that is gone as KILLED.

    A stage killed by a signal (SIGKILL, OOM, a closed terminal) never ends its MLflow run, so
    without this it shows RUNNING forever. Runs from other hosts, or without process tags, are
    left alone: their process cannot be checked from here.
    """
    client = mlflow.MlflowClient()
    host = socket.gethostname()
    try:
        experiment_ids = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(
            experiment_ids, max_results=1000,
            filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'")
        killed = [run for run in runs if owner_is_gone(run.data.tags)]
        for run in killed:
            client.set_terminated(run.info.run_id, "KILLED")
    except mlflow.exceptions.MlflowException as err:  # housekeeping must not stop a stage
        log.warning("could not check for runs of killed processes: %s", err)
        return []
    for run in killed:
        log.warning("MLflow run %s (%s) was left RUNNING by process %s, which is gone: "
                    "marked KILLED", run.info.run_id, run.info.run_name, run.data.tags[PID_TAG])
    return [run.info.run_id for run in killed]


# What a run's git_code_differs and git_params_differ tags compare with HEAD. The pipeline's
# own outputs (metrics/, reports/, tuned/, plots/, lessons/, timings/, dvc.lock) are left out:
# every stage rewrites some of them, so comparing them would flag every run.
CODE_PATHS = ("pipeline", "dvc.yaml", "pyproject.toml", "benchmarks")
PARAMS_PATHS = ("params.yaml",)
# version.<tag> -> the distributions that provide it, the first one installed wins
VERSIONED_PACKAGES = {
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "keras": ("keras",),
    "numpy": ("numpy",),
    "pandas": ("pandas",),
    "scikit-learn": ("scikit-learn",),
    "mlflow": ("mlflow",),
    "optuna": ("optuna",),
    "gensim": ("gensim",),
    "dvc": ("dvc",),
}
NOT_INSTALLED = "not installed"


def _git(directory: str, *args: str) -> str:
    return subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True,
                          check=True).stdout.strip()


@functools.cache
def _git_tags(directory: str) -> dict[str, str]:
    try:
        commit = _git(directory, "rev-parse", "HEAD")
        differs = {name: "true" if _git(directory, "status", "--porcelain",
                                        "--untracked-files=all", "--", *paths) else "false"
                   for name, paths in (("git_code_differs", CODE_PATHS),
                                       ("git_params_differ", PARAMS_PATHS))}
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": "unknown", "git_code_differs": "unknown",
                "git_params_differ": "unknown"}
    return {"git_commit": commit, **differs}


def git_tags() -> dict[str, str]:
    """git_commit: HEAD's sha ("unknown" outside git); git_code_differs / git_params_differ:
    "true" when the code (CODE_PATHS, untracked files included) or params.yaml differ from it.

    Computed once per process and working directory: stages change outputs, not code.
    """
    return _git_tags(str(Path.cwd().resolve()))


def git_commit() -> str:
    """HEAD's sha, never suffixed: whether the code differs is git_tags()' other tags."""
    return git_tags()["git_commit"]


@functools.cache
def package_versions() -> dict[str, str]:
    """version.<name> tags: Python and the packages the numbers depend on."""
    versions = {"version.python": platform.python_version()}
    for name, distributions in VERSIONED_PACKAGES.items():
        versions[f"version.{name}"] = NOT_INSTALLED
        for distribution in distributions:
            try:
                versions[f"version.{name}"] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def lineage_tags() -> dict[str, str]:
    """What every run carries to be reproduced: the commit, whether code and params differ
    from it, and the package versions."""
    return {**git_tags(), **package_versions()}


def data_hash(directory: Path) -> str:
    """sha256 over the names and contents of the files in `directory`, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode())
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def reproducibility_tags(architecture: str, prepared_dir: Path) -> dict[str, str]:
    """Also carries process_tags() and lineage_tags(), for runs made with
    MlflowClient.create_run (tune's parent), which MLFLOW_RUN_CONTEXT does not reach."""
    return {
        "architecture": architecture,
        "data_hash": data_hash(prepared_dir),
        **lineage_tags(),
        **process_tags(),
    }


def log_lesson(stage: str, params: dict, metrics: dict, files: list[Path],
               prepared_dir: Path) -> None:
    """One MLflow run for a lesson's summary: its params, metrics and files under `lessons/`.

    `files` may be temporary paths: each is logged under its own name.
    """
    setup()
    tags = {"stage": stage, "data_hash": data_hash(prepared_dir), **lineage_tags()}
    with mlflow.start_run(run_name=stage.replace("_", "-"), tags=tags):
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        for path in files:
            mlflow.log_artifact(str(path), artifact_path="lessons")


def resume_training_run(architecture: str, run_file) -> mlflow.ActiveRun:
    """Continue the training run; start a fresh one if that run is not in this tracking store."""
    run_id = read_json(run_file)["run_id"]
    try:
        return resume_run(run_id)
    except mlflow.exceptions.MlflowException:
        log.warning("training run %s is not in %s; logging the evaluation to a new run",
                    run_id, mlflow.get_tracking_uri())
        return mlflow.start_run(run_name=architecture, tags={"architecture": architecture,
                                                            "training_run_id": run_id})

