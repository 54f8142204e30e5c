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


def build_archive(path: Path, per_folder: int = 40, unlabelled: int = 10, seed: int = 0,
                  extra_members: list[tarfile.TarInfo] = ()) -> Path:
    """Write a .tar.gz with aclImdb/{train,test}/{pos,neg} and train/unsup, like the real one."""
    rng = random.Random(seed)
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
        for i in range(unlabelled):
            add(f"aclImdb/train/unsup/{i}_0.txt", synthetic_review(rng, rng.random() < 0.5))
        for info in extra_members:
            archive.addfile(info)
    return path


def copy_project(root: Path) -> Path:
    """Copy what `dvc repro` needs into `root`, with params.small.yaml as its params.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("pipeline", "dvc.yaml", ".gitignore", ".dvcignore"):
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / name)
    shutil.copy(PROJECT_ROOT / "params.small.yaml", root / "params.yaml")
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


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory) -> Path:
    return build_archive(tmp_path_factory.mktemp("archive") / "aclImdb_v1.tar.gz")


# The end-to-end project: each stage is a process that starts TensorFlow, so each architecture
# costs a `dvc repro` about 40 s. These cover a fixed-length model and a plain and a gated cell;
# every architecture's save, load and raw-text export (custom layers included) is in
# test_export.py.
E2E_ARCHITECTURES = ["dense", "simple_rnn", "gru"]
E2E_LESSON_ARCHITECTURES = ["simple_rnn", "gru"]


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


@pytest.fixture(scope="session")
def reproduced_project(tmp_path_factory) -> tuple[Path, dict, str]:
    """A fresh git + DVC repository holding the pipeline, after one full `dvc repro`.

    (root, env, the repro's log). Shared by the end-to-end and the stage-kill tests: the
    ones that change it put it back, the stage-kill tests work on a copy.
    """
    root = copy_project(tmp_path_factory.mktemp("project") / "project").resolve()
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["architectures"] = E2E_ARCHITECTURES
    params["lessons"]["sequence_architectures"] = E2E_LESSON_ARCHITECTURES
    params["lessons"]["gradient_architectures"] = E2E_LESSON_ARCHITECTURES
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = project_env(build_archive(root.parent / "aclImdb_v1.tar.gz", per_folder=60,
                                    unlabelled=5))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "pipeline"]):
        run_ok(cmd, root, env)
    return root, env, run_ok(["dvc", "repro"], root, env)
