"""Writes that never leave a half-written output: write beside the target, then rename."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

TMP_SUFFIX = ".partial"  # atomic_path's temp folders: .<target>.<random>.partial


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `target`; move it onto `target` only if the block succeeds.

    Works for files and directories (the block decides which it writes). A SIGKILL skips the
    cleanup and leaves the temp folder: its name ends in TMP_SUFFIX, which .dvcignore and
    .gitignore list, so DVC never hashes it into an output or a dependency folder.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX,
                                    dir=target.parent))
    tmp = tmp_dir / target.name
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_json(path: Path | str, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_parquet(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


@contextmanager
def staged_directory(directory: Path) -> Iterator[Path]:
    """A temporary folder beside `directory`; when the block succeeds each file in it replaces
    its namesake in `directory` (one rename each), leaving the other files there alone:
    reports/ also holds the promote stage's promotion.json and promotion.md."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=f".{directory.name}.",
                                     suffix=TMP_SUFFIX) as staging:
        yield Path(staging)
        for path in sorted(Path(staging).iterdir()):
            os.replace(path, directory / path.name)
