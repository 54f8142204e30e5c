"""Helpers shared by the test files: the synthetic archive, the project copies that the
end-to-end tests run `dvc repro` in, the MLflow servers the serving tests start, and what
keeps the fast tier fast. Test files import these from here (`from helpers import ...`);
tests/conftest.py keeps only fixtures and hooks."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import requests
import yaml

# --- The synthetic archive in the aclImdb layout -------------------------------------------

PROJECT_ROOT = Path(__file__).resolve().parents[1]
POSITIVE = "great wonderful excellent loved superb brilliant moving masterpiece".split()
NEGATIVE = "awful terrible boring hated dull worst waste mess".split()
FILLER = "the film movie plot actor scene story director and was it this of a".split()


def synthetic_review(rng: random.Random, positive: bool) -> str:
    cue = POSITIVE if positive else NEGATIVE
    words = [rng.choice(FILLER) for _ in range(rng.randint(5, 60))]
    for _ in range(rng.randint(2, 4)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(cue))
    return " ".join(words).capitalize() + ".<br /><br />" + rng.choice(cue).capitalize() + "!"


def movie_runs(rng: random.Random, count: int, first: int, reuse: list[str] = ()) -> list[str]:
    """`count` movie ids, one per review: each movie covers 1-4 consecutive reviews. New ids
    are numbered from `first`; about a third of the runs take a movie from `reuse` instead (a
    movie with both positive and negative reviews, as in IMDB)."""
    reuse, ids, fresh = list(reuse), [], iter(range(first, first + count))
    while len(ids) < count:
        movie = reuse.pop() if reuse and rng.random() < 0.3 else f"tt{next(fresh):07d}"
        ids += [movie] * rng.randint(1, 4)
    return ids[:count]


def movie_url(movie_id: str) -> str:
    return f"http://www.imdb.com/title/{movie_id}/usercomments"


def build_archive(path: Path, per_folder: int = 40, unlabelled: int = 10, seed: int = 0,
                  extra_members: list[tarfile.TarInfo] = (), urls: bool = True) -> Path:
    """Write a .tar.gz with aclImdb/{train,test}/{pos,neg} and train/unsup, like the real one.

    With `urls`, also aclImdb/{train,test}/urls_{pos,neg}.txt and train/urls_unsup.txt: line i
    is the IMDB page of review i's movie. Movies cover 1-4 consecutive reviews, some have
    reviews of both labels, and train, test and unsup have no movie in common.
    """
    rng = random.Random(seed)
    movie_rng = random.Random(seed + 7919)  # its own stream: the reviews stay as they were
    with tarfile.open(path, "w:gz") as archive:
        def add(name: str, text: str) -> None:
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        add("aclImdb/README", "synthetic test archive\n")
        for split in ("train", "test"):
            for label, rating_range in (("pos", (7, 10)), ("neg", (1, 4))):
                for i in range(per_folder):
                    rating = rng.randint(*rating_range)
                    add(f"aclImdb/{split}/{label}/{i}_{rating}.txt",
                        synthetic_review(rng, label == "pos"))
            if urls:
                first = {"train": 1_000_000, "test": 2_000_000}[split]  # disjoint, as in IMDB
                positive = movie_runs(movie_rng, per_folder, first)
                shared = movie_rng.sample(sorted(set(positive)), len(set(positive)))
                negative = movie_runs(movie_rng, per_folder, first + 500_000, reuse=shared)
                for label, movies in (("pos", positive), ("neg", negative)):
                    add(f"aclImdb/{split}/urls_{label}.txt",
                        "".join(movie_url(m) + "\n" for m in movies))
        for i in range(unlabelled):
            add(f"aclImdb/train/unsup/{i}_0.txt", synthetic_review(rng, rng.random() < 0.5))
        if urls:
            movies = movie_runs(movie_rng, unlabelled, 3_000_000)
            add("aclImdb/train/urls_unsup.txt", "".join(movie_url(m) + "\n" for m in movies))
        for info in extra_members:
            archive.addfile(info)
    return path


def copy_project(root: Path) -> Path:
    """Copy what `dvc repro` needs into `root`, with params.small.yaml (merged over
    params.yaml, since DVC reads params.yaml as it is) as its params.yaml."""
    from pipeline.core.config import write_params

    root.mkdir(parents=True, exist_ok=True)
    for name in ("pipeline", "dvc.yaml", ".gitignore", ".dvcignore", "data/incoming/README.md"):
        source = PROJECT_ROOT / name
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / name)
    write_params(PROJECT_ROOT / "params.small.yaml", root / "params.yaml")
    return root


def keyword_data(n: int, seed: int):
    """Sequences padded to 16; label 1 when token 3 appears, else 0 (learnable in a few epochs)."""
    from pipeline.prepare import pad

    rng = np.random.default_rng(seed)
    sequences, labels = [], []
    for i in range(n):
        seq = rng.integers(4, 20, size=rng.integers(3, 15))
        if i % 2:
            seq[rng.integers(len(seq))] = 3
        sequences.append(seq)
        labels.append(i % 2)
    return pad(sequences, 16), np.array(labels, "int8")


# --- The end-to-end project -----------------------------------------------------------------

# The end-to-end project: each stage is a process that starts TensorFlow, so each architecture
# costs a `dvc repro` about 40 s. These cover a fixed-length model with the defaults (dense, its
# search space emptied: the untuned path) and a tuned recurrent one (gru); every architecture's
# save, load and raw-text export (custom layers included) is in test_export.py, and the lessons'
# contrast of a plain and a gated cell in test_lessons.py.
E2E_ARCHITECTURES = ["dense", "gru"]
E2E_UNTUNED = ["dense"]
E2E_LESSON_ARCHITECTURES = ["gru"]
E2E_HYBRID = "gru"


# How long one command of an end-to-end test (a `dvc repro`, an `imdb retrain`) may run before it
# counts as hung: a guard, not a speed target. On a 2-core AMD EPYC one retrain of the new-data
# test took over 600 s (236 s on the Xeon where the suite was timed), and the whole suite 40 min.
HANG_GUARD_S = 2400


def run_ok(cmd: list[str], cwd: Path, env: dict, timeout: int = HANG_GUARD_S) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def project_env(archive: Path) -> dict:
    """The environment a user's shell would give `dvc repro`: the test venv, the local archive."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        IMDB_ARCHIVE=str(archive),
        IMDB_ARCHIVE_SHA256=hashlib.sha256(archive.read_bytes()).hexdigest(),
        GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com",
    )
    return env


def small_project(root: Path) -> tuple[Path, dict]:
    """A fresh git + DVC repository holding the pipeline with the end-to-end params."""
    root = copy_project(root).resolve()
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["architectures"] = E2E_ARCHITECTURES
    params["lessons"]["sequence_architectures"] = E2E_LESSON_ARCHITECTURES
    params["lessons"]["gradient_architectures"] = E2E_LESSON_ARCHITECTURES
    params["hybrid"]["recurrent"] = E2E_HYBRID
    params["pretrain"]["architectures"] = [E2E_HYBRID]  # starts from the word vectors, so its
    params["search_spaces"][E2E_HYBRID].pop("embedding_dim", None)  # width is pretrain.dim's
    for architecture in E2E_UNTUNED:
        params["search_spaces"][architecture] = {}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = project_env(build_archive(root.parent / "aclImdb_v1.tar.gz", per_folder=60,
                                    unlabelled=5))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "pipeline"]):
        run_ok(cmd, root, env)
    return root, env


# What a run of the same params must reproduce byte for byte: every result metric, every tuned
# hyperparameter, the report's and the lessons' tables, the curves and the test predictions.
# Machine measurements (timings/) and MLflow's registry state (reports/promotion.json) are not.
RESULT_FILES = ("metrics/**/*.json", "tuned/*.json", "reports/comparison.*", "reports/tuning.csv",
                "reports/overfitting.csv", "reports/behavior*.csv",
                "lessons/**/*.json", "lessons/*.csv", "lessons/*.md", "plots/**/*.csv",
                "predictions/*.parquet", "data/prepared/*")


def result_files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for pattern in RESULT_FILES for path in sorted(root.glob(pattern))}


# --- MLflow servers (tests/serving/test_serving.py, test_serving_load.py, test_tracking_server.py)

MLFLOW = str(Path(sys.executable).parent / "mlflow")


def labelled_reviews(n: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    labels = [i % 2 for i in range(n)]
    return pd.DataFrame({"review": [synthetic_review(rng, bool(y)) for y in labels],
                         "label": labels})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict, port: int, log_file: Path,
          new_session: bool = False) -> subprocess.Popen:
    """Start a server and wait for its /health or /ping; new_session: its own process group."""
    # The server starts uvicorn by name: the environment's bin folder must be on PATH.
    env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    process = subprocess.Popen(cmd, env=env, stdout=open(log_file, "w"),  # noqa: SIM115
                               stderr=subprocess.STDOUT, start_new_session=new_session)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited:\n{log_file.read_text()}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok or \
                    requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).ok:
                return process
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or busy starting
            time.sleep(1)
    process.terminate()
    raise AssertionError(f"server did not start in time:\n{log_file.read_text()}")


# --- The tiers: `pytest -m "not slow"` starts no server, no PostgreSQL, no `dvc repro` --------

# Fixtures that start one of those (or build on one that does): only tests marked slow may use
# them. tests/project/test_tiers.py checks the fast tier's collection against this list.
SLOW_FIXTURES = frozenset({
    "reproduced_projects", "reproduced_project",  # conftest.py: two full `dvc repro` runs
    "postgres",  # test_tune.py: a PostgreSQL cluster
    "server",  # test_tracking_server.py: `mlflow server`
    "served",  # test_serving_load.py: `mlflow models serve`
})


def slow_command(args) -> str | None:
    """What makes a subprocess's command line slow-tier only (a server, PostgreSQL, `dvc repro`),
    or None."""
    if isinstance(args, str | bytes | os.PathLike):
        words = os.fsdecode(args).split()
    else:
        words = [os.fsdecode(word) for word in args]
    names = [Path(word).name for word in words]
    for i, name in enumerate(names):
        rest = names[i + 1:i + 3]
        if name in ("pg_ctl", "initdb"):
            return "starts PostgreSQL"
        if name == "mlflow" and (rest[:1] in (["server"], ["ui"]) or rest == ["models", "serve"]):
            return "starts an MLflow server"
        if name == "dvc" and rest[:1] == ["repro"]:
            return "runs `dvc repro`"
    return None


@contextmanager
def refusing_slow_commands(test: str):
    """While in the block, a subprocess that `slow_command` names fails at once, saying `test`
    needs the slow mark (conftest.py wraps every unmarked test's setup and call in this)."""
    original = subprocess.Popen.__init__

    def guarded(self, *args, **options):
        __tracebackhide__ = True  # the failure points at the test's own line
        command = args[0] if args else options.get("args")
        why = slow_command(command)
        if why:
            raise AssertionError(f"{test} {why} ({command}) but is not marked slow: add "
                                 "@pytest.mark.slow, or keep it out of the fast tier")
        original(self, *args, **options)

    subprocess.Popen.__init__ = guarded
    try:
        yield
    finally:
        subprocess.Popen.__init__ = original
