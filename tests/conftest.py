"""Shared fixtures: a small archive in the aclImdb layout, built by the tests themselves."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

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
    from pipeline.config import write_params

    root.mkdir(parents=True, exist_ok=True)
    for name in ("pipeline", "dvc.yaml", ".gitignore", ".dvcignore"):
        source = PROJECT_ROOT / name
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


@pytest.fixture(autouse=True, scope="module")
def mlflow_globals():
    """Put MLflow's process-wide state back after each test file. `mlflow.set_tracking_uri` and
    `mlflow.set_experiment` keep module globals and copy them into os.environ for subprocesses
    (MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_ID), so under pytest-xdist a file that sets them
    would hand its temporary store to the next file on the same worker."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("MLFLOW_")}
    yield
    import mlflow
    import mlflow.tracking.fluent

    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.tracking.fluent._active_experiment_id = None  # no public way to unset it
    for key in [key for key in os.environ if key.startswith("MLFLOW_")]:
        del os.environ[key]
    os.environ.update(saved)


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory) -> Path:
    return build_archive(tmp_path_factory.mktemp("archive") / "aclImdb_v1.tar.gz")


# The end-to-end project: each stage is a process that starts TensorFlow, so each architecture
# costs a `dvc repro` about 40 s. These cover a fixed-length model with the defaults (dense, its
# search space emptied: the untuned path) and a tuned recurrent one (gru); every architecture's
# save, load and raw-text export (custom layers included) is in test_export.py, and the lessons'
# contrast of a plain and a gated cell in test_lessons.py.
E2E_ARCHITECTURES = ["dense", "gru"]
E2E_UNTUNED = ["dense"]
E2E_LESSON_ARCHITECTURES = ["gru"]


def run_ok(cmd: list[str], cwd: Path, env: dict, timeout: int = 1200) -> str:
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


@pytest.fixture(scope="session")
def reproduced_projects(tmp_path_factory) -> list[tuple[Path, dict, str, dict[str, bytes]]]:
    """Two fresh copies of the project, each after one full `dvc repro`:
    [(root, env, log, its result_files right after the repro)].

    The two run at once (each stage is mostly one busy core), so the second costs little time.
    The first is shared by the end-to-end and the stage-kill tests: the ones that change it put
    it back, the stage-kill tests work on a copy. The second is left as its repro made it.
    """
    projects = [small_project(tmp_path_factory.mktemp(f"copy{i}") / "project") for i in (1, 2)]
    runs = [subprocess.Popen(["dvc", "repro"], cwd=root, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for root, env in projects]
    logs = [run.communicate(timeout=1800)[0] for run in runs]
    for run, log in zip(runs, logs, strict=True):
        assert run.returncode == 0, f"dvc repro failed:\n{log}"
    return [(root, env, log, result_files(root))
            for (root, env), log in zip(projects, logs, strict=True)]


@pytest.fixture(scope="session")
def reproduced_project(reproduced_projects) -> tuple[Path, dict, str]:
    """(root, env, the repro's log) of the first copy of `reproduced_projects`."""
    return reproduced_projects[0][:3]


# `pytest -n 2` (pytest-xdist, --dist loadgroup) runs two workers. Each test file goes to one
# worker whole, so a file's module fixtures are built once and its ordered tests stay in order;
# the files that share the session's reproduced projects go together, so those are built once.
# The longest groups are collected first, so they start first. (tryfirst: xdist reads the groups
# in its own hook.)
REPRO_FILES = ("test_pipeline_e2e.py", "test_reproducible.py", "test_stage_kills.py")
LONG_FILES = (*REPRO_FILES, "test_retrain_e2e.py", "test_tune.py", "test_tracking_server.py")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group("repro" if name in REPRO_FILES else name))
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order in a file
