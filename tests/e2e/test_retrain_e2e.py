"""`imdb retrain` end to end: a local DVC remote (a folder), a local MLflow store, real `dvc repro`.

One architecture (conv1d) keeps each run short. The tests run in order on one project:
first retrain -> retrain with nothing changed -> fresh clone from the remote -> worse model.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import HANG_GUARD_S, build_archive, copy_project, labelled_reviews
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = "imdb-sentiment"


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=HANG_GUARD_S)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def retrain(project) -> str:
    root, env, _ = project
    return run([sys.executable, "-m", "pipeline.cli", "retrain"], root, env)


def set_params(root: Path, change) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    change(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def registry(project) -> tuple[str, int]:
    """(the champion's version, how many versions are registered)."""
    _, env, _ = project
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias(MODEL, "champion")
    return champion.version, len(client.search_model_versions(f"name='{MODEL}'"))


def promotion(root: Path) -> dict:
    return json.loads((root / "reports/promotion.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A committed git + DVC project on branch main, with a folder as its default DVC remote."""
    base = tmp_path_factory.mktemp("retrain")
    root = copy_project(base / "project")

    def one_strong_model(params):  # ~0.94 test accuracy on this archive, far above chance
        params["architectures"] = ["conv1d"]
        params["lessons"]["sequence_architectures"] = ["conv1d"]
        params["lessons"]["gradient_architectures"] = ["conv1d"]
        params["models"]["conv1d"]["learning_rate"] = 0.01
        params["train"]["max_epochs"] = params["train"]["patience"] = 8
        # trained as when ~0.94 was measured: early stopping, no clipping (with the small
        # params' cosine schedule and clipping it scored 0.55, chance, in a CI run)
        params["train"].update(schedule="plateau", clipnorm=None)
        params["tune"]["n_trials"] = 0  # the defaults: tuning is test_tune.py's
        # the hybrid stacks the one architecture, reported but not a candidate: these tests
        # follow conv1d's retraining through the champion gate
        params["hybrid"].update(recurrent="conv1d", candidate=False)

    set_params(root, one_strong_model)
    archive = build_archive(base / "aclImdb_v1.tar.gz", per_folder=60, unlabelled=5)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "DVC_", "GITHUB_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        IMDB_ARCHIVE=str(archive),
        IMDB_ARCHIVE_SHA256=hashlib.sha256(archive.read_bytes()).hexdigest(),
        MLFLOW_TRACKING_URI=f"sqlite:///{base / 'mlflow.db'}",
        GITHUB_STEP_SUMMARY=str(base / "summary.md"),
        GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com",
    )
    run(["git", "init", "-q", "-b", "main"], root, env)
    run(["dvc", "init", "-q"], root, env)
    run(["dvc", "remote", "add", "-d", "local", str(base / "remote")], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "pipeline"], root, env)
    return root, env, base


def test_first_retrain_trains_pushes_and_promotes(project):
    root, env, base = project
    log = retrain(project)
    for stage in ("download", "prepare", "train@conv1d", "evaluate@conv1d", "report"):
        assert f"Running stage '{stage}'" in log
    decision = promotion(root)
    assert decision["promoted"] and "no champion yet" in decision["reason"]
    assert registry(project) == (decision["version"], 1)
    assert any(p.is_file() for p in (base / "remote").rglob("*")), "nothing pushed"
    summary = (base / "summary.md").read_text()
    assert "Champion: **moved**" in summary and "`train@conv1d`" in summary
    assert "metrics/eval/conv1d.json" in summary  # the diff against main, where it is new
    # What the workflow does next: commit the new dvc.lock and metrics.
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "retrain"], root, env)


def test_second_retrain_with_nothing_changed_runs_and_moves_nothing(project):
    root, env, _ = project
    before = registry(project)
    model = root / "models/conv1d/model.keras"
    stamp = model.stat().st_mtime_ns
    log = retrain(project)
    assert "Running stage" not in log
    assert "Nothing changed: no stage ran" in log
    assert "Champion: **not moved** (the report stage did not run" in log
    assert "No metric differs from `main`" in log
    assert registry(project) == before
    assert model.stat().st_mtime_ns == stamp
    assert run(["git", "status", "--porcelain"], root, env) == ""


def test_fresh_clone_pulls_data_and_models_and_reproduces_nothing(project):
    root, env, base = project
    clone = base / "clone"
    run(["git", "clone", "-q", str(root), str(clone)], base, env)
    assert not (clone / "models/conv1d/model.keras").exists()
    run(["dvc", "pull"], clone, env)
    for path in ("data/reviews.parquet", "models/conv1d/model.keras",
                 "exported/conv1d/model.keras"):
        assert (clone / path).read_bytes() == (root / path).read_bytes()
    assert "Data and pipelines are up to date" in run(["dvc", "status"], clone, env)
    assert "Running stage" not in run(["dvc", "repro"], clone, env)


def test_worse_model_is_registered_but_does_not_move_the_champion(project):
    root, env, base = project
    champion, versions = registry(project)
    # The same model barely moved from its random start: about chance on the test set.
    set_params(root, lambda params: params["models"]["conv1d"].update(learning_rate=1e-7))
    log = retrain(project)
    assert "Running stage 'train@conv1d'" in log and "Running stage 'report'" in log
    assert "Running stage 'prepare'" not in log
    decision = promotion(root)
    assert not decision["promoted"] and "does not beat the champion" in decision["reason"]
    assert decision["candidate_accuracy"] < 0.75 < decision["champion_accuracy"]
    assert decision["champion_version"] == champion
    assert registry(project) == (champion, versions + 1)
    assert "Champion: **not moved**" in log
    assert "metrics/eval/conv1d.json" in log  # the accuracy drop, against main


def add_batch(project, name: str, batch: pd.DataFrame) -> Path:
    """A batch of new labelled reviews as it arrives: a file in data/incoming, tracked by DVC."""
    root, env, _ = project
    path = root / "data/incoming" / name
    batch.to_csv(path, index=False)
    run(["dvc", "add", "-q", str(path.relative_to(root))], root, env)
    return path


def refused(project) -> str:
    """`imdb retrain`, which must fail; its output (DVC's on stdout, the error on stderr)."""
    root, env, _ = project
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "retrain"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_new_labelled_reviews_are_checked_learned_from_and_reported(project):
    root, env, base = project
    set_params(root, lambda params: params["models"]["conv1d"].update(learning_rate=0.01))
    run(["git", "commit", "-qam", "the learning rate that works"], root, env)
    before = registry(project)
    new = labelled_reviews(40, seed=99).rename(columns={"review": "text"})
    add_batch(project, "2026-12.csv", new)
    (base / "summary.md").unlink()
    log = retrain(project)
    for stage in ("intake", "prepare", "train@conv1d", "baseline@nbsvm", "report", "promote"):
        assert f"Running stage '{stage}'" in log
    intake = json.loads((root / "metrics/incoming.json").read_text())
    assert (intake["received"], intake["accepted"], intake["use"]) == (40, 40, "train")
    assert set(intake["drift"]) == {"label", "length", "oov", "drifted"}
    data = json.loads((root / "metrics/data.json").read_text())
    assert data["train"]["reviews"] == 40 + json.loads(
        run(["git", "show", "HEAD:metrics/data.json"], root, env))["train"]["reviews"]

    summary = (base / "summary.md").read_text()
    assert "Received 40 in 1 file(s); accepted 40" in summary
    assert f"The champion before retraining, `{MODEL}` version {before[0]}, scores" in summary
    assert "| positive share | 0.500 |" in summary and "| median words |" in summary
    assert "| model | test accuracy at `main` | this run | change |" in summary
    assert "| conv1d |" in summary and "| nbsvm |" in summary
    decision = promotion(root)
    moved = registry(project)[0] != before[0]
    assert decision["promoted"] == moved  # the alias moved only if the gate passed
    assert ("Champion: **moved**" if moved else "Champion: **not moved**") in summary
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "retrained on new reviews"], root, env)

    # Nothing new since: the next scheduled run runs nothing.
    again = retrain(project)
    assert "Running stage" not in again and "Nothing changed: no stage ran" in again


@pytest.mark.parametrize("bad", ["a test review", "a label that is not 0 or 1"])
def test_a_bad_batch_is_refused_in_one_line_and_changes_nothing(project, bad):
    root, env, _ = project
    reviews = pd.read_parquet(root / "data/reviews.parquet")
    if bad == "a test review":
        test = reviews[reviews.split == "test"].iloc[3]
        batch = pd.DataFrame({"text": ["A fine new film, well acted and well made.", test.text],
                              "label": [1, test.label]})
        expected = (f"expectation 'no copy of a test review' failed in 1 row(s): "
                    f"data/incoming/bad.csv row 2 (= test/{'pos' if test.label else 'neg'}/"
                    f"{test.id})")
    else:
        batch = pd.DataFrame({"text": ["A fine new film, well acted and well made."],
                              "label": ["positive"]})
        expected = ("new reviews fail validation: expectation 'labels in {0, 1}' (column label) "
                    "failed: observed 'positive' in 1 row(s): data/incoming/bad.csv row 1")
    champion = registry(project)
    lock, model = (root / "dvc.lock").read_bytes(), (root / "models/conv1d/model.keras")
    stamp = model.stat().st_mtime_ns
    path = add_batch(project, "bad.csv", batch)
    error = refused(project)
    (line,) = [line for line in error.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: `dvc repro --pull intake` failed (exit 255): ")
    assert expected in line
    assert "Running stage 'prepare'" not in error
    assert registry(project) == champion
    assert (root / "dvc.lock").read_bytes() == lock and model.stat().st_mtime_ns == stamp
    path.unlink()
    Path(f"{path}.dvc").unlink()
    run(["git", "checkout", "--", "data/incoming/.gitignore"], root, env)  # `dvc add` listed it
    assert "Running stage" not in retrain(project)  # with the batch gone, nothing to do
