"""Shared fixtures: a small archive in the aclImdb layout, built by the tests themselves."""

from __future__ import annotations

import io
import random
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

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
