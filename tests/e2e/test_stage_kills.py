"""Every stage in dvc.yaml, SIGKILLed partway, then `dvc repro` again (issue 9, faults).

A copy of the end-to-end project after its uninterrupted `dvc repro` (the reference); each kind
of stage once (the gru item of the matrix stages), in turn rerun with `dvc repro -f -s` and
killed right after its first output lands (before its only output, for a one-output stage), by
tests/stage_kill/sitecustomize.py: no hook in the pipeline itself. Then: no declared output looks
complete unless it is, DVC calls the stage changed, no temp file lies where DVC hashes it, and
`dvc repro` brings back the reference results, with no MLflow run left RUNNING.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import HANG_GUARD_S, PROJECT_ROOT
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARCH = "gru"
KILLER = PROJECT_ROOT / "tests" / "stage_kill"
# Wall-clock values, run identities and store locations (the copy is elsewhere) differ; the rest
# must not.
# Checked on CPU: each stage forced to rerun for real reproduced every output but these keys,
# the .md prose (times in it) and reports/promotion.json (see content()).
VOLATILE = re.compile(r"seconds|_ms|per_second|run_id|_uri|started|finished|duration")
STATE = {".git", ".dvc", "mlruns", "mlflow.db", "optuna"}  # not outputs: git's, DVC's, trackers'


def run(cmd: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=HANG_GUARD_S)
    if check:
        assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def project(reproduced_project, tmp_path_factory):
    """A copy of the end-to-end project after its uninterrupted `dvc repro` (the reference)."""
    source, env, _ = reproduced_project
    root = tmp_path_factory.mktemp("kills") / "project"
    shutil.copytree(source, root, symlinks=True)
    return root, env


def killed_stages(root: Path) -> dict[str, dict]:
    """Each stage of dvc.yaml once: the stages without a matrix, and the ARCH item of the rest."""
    return {name: stage for name, stage in stages(root).items()
            if "@" not in name or name.endswith(f"@{ARCH}")}


def stages(root: Path) -> dict[str, dict]:
    """dvc.lock's stages, in dvc.yaml's order: each with its `cmd` and declared `outs`."""
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


def output_files(root: Path, out: str) -> list[Path]:
    path = root / out
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def check_complete(path: Path) -> None:
    """Raise unless `path` is a whole file of its kind (a torn write fails to load)."""
    suffix = path.suffix
    if suffix == ".json":
        json.loads(path.read_text())
    elif suffix == ".parquet":
        pd.read_parquet(path)
    elif suffix == ".csv":
        pd.read_csv(path)
    elif suffix == ".npz":
        with np.load(path) as arrays:
            [arrays[name] for name in arrays.files]
    elif suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None, f"{path}: corrupt member"
    elif suffix == ".png":
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82"), path
    else:
        assert path.stat().st_size > 0, f"{path} is empty"


def content(path: Path):
    """What must match between two runs, with wall-clock values and run ids left out."""
    if path.name == "promotion.json":  # depends on the MLflow registry, which the first run
        return None                    # fills: a rerun finds its candidate already champion
    if path.suffix == ".json":
        def strip(value):
            if isinstance(value, dict):
                return {k: strip(v) for k, v in value.items() if not VOLATILE.search(k)}
            return [strip(v) for v in value] if isinstance(value, list) else value
        return strip(json.loads(path.read_text()))
    if path.suffix in (".csv", ".parquet"):
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        return frame[[c for c in frame.columns if not VOLATILE.search(str(c))]]
    if path.suffix == ".npz":
        with np.load(path) as arrays:
            return {name: arrays[name] for name in arrays.files}
    if path.suffix == ".txt" and not VOLATILE.search(path.name):
        return path.read_text()
    # .keras, .png, .html: bytes differ run to run (zip and image metadata); .md: prose over the
    # CSV/JSON numbers compared here, with wall-clock times in it. Checked only for being whole.
    return None


def assert_same(old, new, where: str) -> None:
    if isinstance(old, pd.DataFrame):
        pd.testing.assert_frame_equal(old, new, check_exact=False, rtol=1e-5, obj=where)
    elif isinstance(old, dict) and old and isinstance(next(iter(old.values())), np.ndarray):
        assert old.keys() == new.keys(), where
        for name in old:
            np.testing.assert_allclose(old[name], new[name], rtol=1e-6, err_msg=where)
    else:
        assert old == pytest.approx(new, rel=1e-5) if isinstance(old, float) else old == new, where


def results(root: Path) -> dict[str, object]:
    return {str(path.relative_to(root)): content(path)
            for stage in stages(root).values() for out in stage["outs"]
            for path in output_files(root, out["path"])}


def hidden_leftovers(root: Path) -> set[Path]:
    """Top-most dot-named files and folders (atomic_path's temps), outside git/DVC/tracker state."""
    found = set()
    for path in root.rglob(".*"):
        parts = path.relative_to(root).parts
        if parts[0] not in STATE and path.name not in (".gitignore", ".dvcignore"):
            first = next(i for i, part in enumerate(parts) if part.startswith("."))
            found.add(root.joinpath(*parts[:first + 1]))
    return found


def dvc_view(root: Path) -> tuple[dict, list[Path]]:
    """`dvc status`, and the dot-named leftovers DVC would hash (not .dvcignored), in-process."""
    from dvc.repo import Repo

    with contextlib.chdir(root), Repo(str(root)) as repo:  # status names stages from the cwd
        return repo.status(), [path for path in hidden_leftovers(root)
                               if not repo.dvcignore.is_ignored(repo.fs, str(path))]


def running_runs(root: Path) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'")


def test_each_stage_killed_partway_leaves_nothing_complete_looking_and_repro_recovers(
        project, tmp_path):
    root, env = project
    reference = results(root)
    assert any(key.startswith("predictions/") for key in reference)
    left_running = set()  # MLflow runs a kill left RUNNING
    for name, stage in killed_stages(root).items():
        outs = [out["path"] for out in stage["outs"]]
        after = 0 if len(outs) == 1 else 1
        marker = tmp_path / f"killed-{name}"
        killer_env = {**env, "PYTHONPATH": str(KILLER), "KILL_STAGE_CMD": stage["cmd"],
                      "KILL_OUTS": json.dumps([str(root / out) for out in outs]),
                      "KILL_AFTER_RENAMES": str(after), "KILL_MARKER": str(marker)}
        running_before = {r.info.run_id for r in running_runs(root)}

        killed = run(["dvc", "repro", "--force", "--single-item", name], root, killer_env,
                     check=False)
        assert killed.returncode != 0 and marker.exists(), \
            f"{name} was not killed:\n{killed.stdout}\n{killed.stderr}"
        present = [out for out in outs if (root / out).exists()]
        assert len(present) == after, f"{name}: {present} in place, expected {after} of {outs}"
        for out in present:  # (a) what is there is whole, and what an uninterrupted run wrote
            for path in output_files(root, out):
                check_complete(path)
                key = str(path.relative_to(root))
                if reference[key] is not None:
                    assert_same(reference[key], content(path), key)
        status, leftovers = dvc_view(root)
        assert name in status, f"dvc status accepts the killed {name}: {status}"  # (b)
        assert leftovers == [], f"{name} left temp files where DVC hashes them"  # (c)
        left_running |= {r.info.run_id for r in running_runs(root)} - running_before
        # As a user would: DVC restores the stage from its run cache where it can (train, ...),
        # else reruns it (baseline, report, the lessons).
        run(["dvc", "repro", name], root, env)

    run(["dvc", "repro"], root, env)
    status, leftovers = dvc_view(root)
    assert status == {} and leftovers == []
    assert any(path.name.endswith(".partial") for path in hidden_leftovers(root)), \
        "no kill left a temp folder behind: (c) tested nothing"
    after_kills = results(root)
    assert after_kills.keys() == reference.keys()
    mismatched = []
    for key, value in reference.items():  # (d)
        try:
            if value is not None:
                assert_same(value, after_kills[key], key)
        except AssertionError:
            mismatched.append(key)
    assert mismatched == [], "results differ from the uninterrupted run's"
    assert left_running, "no kill happened inside an MLflow run: (e) tests nothing"
    assert running_runs(root) == []  # (e) the next stages' tracking.setup() closed them
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    assert {client.get_run(run_id).info.status for run_id in left_running} <= {"KILLED", "FAILED"}
