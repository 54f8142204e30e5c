"""MLflow at the edge: where runs go, and the tags that make each run reproducible."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import mlflow

from pipeline import UserError

EXPERIMENT = "imdb-sentiment"
DEFAULT_STORE = Path("mlflow.db")

# Fail in seconds, not minutes, when a remote tracking server is down.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else a SQLite store in the project (what `mlflow ui` reads)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_STORE.resolve()}"


def setup(experiment: str = EXPERIMENT) -> None:
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment(experiment)
    except Exception as err:  # MLflow raises several types for an unreachable or bad store
        raise UserError(
            f"cannot reach the MLflow tracking store at {uri}: {err.__class__.__name__}: "
            f"{str(err)[:300]}. Start that server, or unset MLFLOW_TRACKING_URI to use the "
            "local store in ./mlflow.db") from None


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


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
    return {
        "architecture": architecture,
        "git_commit": git_commit(),
        "data_hash": data_hash(prepared_dir),
    }
