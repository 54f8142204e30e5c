"""Fixtures and hooks only; the helpers the test files share are in tests/helpers.py.

The tiers: tests marked `slow` start a server or PostgreSQL, run `dvc repro`, kill a stage, a
worker or a server, or train for real; `pytest -m "not slow"` is the fast tier. An unmarked
test that starts a server, PostgreSQL or `dvc repro` fails (the two hooks at the end;
tests/project/test_tiers.py checks both)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import build_archive, refusing_slow_commands, result_files, small_project


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
LONG_FILES = (*REPRO_FILES, "test_retrain_e2e.py", "test_fan_out.py", "test_tune.py",
              "test_tracking_server.py")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group("repro" if name in REPRO_FILES else name))
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order in a file


def _guarded(item):
    if item.get_closest_marker("slow"):
        return (yield)
    with refusing_slow_commands(item.nodeid):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):  # the item's fixtures, module-scoped ones included
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _guarded(item))
