"""The real `dvc repro`, end to end, on a small archive the tests build, with params.small.yaml."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import E2E_ARCHITECTURES, E2E_HYBRID, run_ok
from mlflow.tracking import MlflowClient

from pipeline.core.models import ARCHITECTURES as ALL_ARCHITECTURES
from pipeline.core.paths import BASELINE_NAMES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARCHITECTURES = E2E_ARCHITECTURES


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    return run_ok(cmd, cwd, env)


@pytest.fixture(scope="module")
def project(reproduced_project):
    return reproduced_project


def test_every_stage_writes_its_declared_outputs(project):
    root, _, _ = project
    reviews = pd.read_parquet(root / "data/reviews.parquet")
    assert len(reviews) == 240 and set(reviews.split) == {"train", "test"}
    assert len(pd.read_parquet(root / "data/unlabelled.parquet")) == 5
    validation = json.loads((root / "metrics/validation.json").read_text())
    assert all(validation["expectations"].values())
    assert validation["duplicates"]["exact"]["test_in_train"] == 0  # nothing to drop here
    assert len(pd.read_parquet(root / "data/validated/reviews.parquet")) == 240
    assert (root / "data/validated/duplicates.csv").exists()
    for split in ("train", "val", "test"):
        assert (root / f"data/prepared/{split}.npz").exists()
    data_report = json.loads((root / "metrics/data.json").read_text())
    assert data_report["test"]["reviews"] == 120
    spaces = yaml.safe_load((root / "params.yaml").read_text())["search_spaces"]
    for arch in ARCHITECTURES:  # an empty search space means the defaults, untuned
        assert (root / f"models/{arch}/model.keras").exists()
        assert json.loads((root / f"tuned/{arch}.json").read_text())["tuned"] == bool(spaces[arch])
        assert (root / f"exported/{arch}/model.keras").exists()
        history = pd.read_csv(root / f"plots/history/{arch}.csv")
        assert {"epoch", "loss", "val_loss", "accuracy", "val_accuracy"} <= set(history.columns)
        scores = json.loads((root / f"metrics/eval/{arch}.json").read_text())
        assert 0 <= scores["accuracy"] <= 1 and sum(scores["confusion_matrix"].values()) == 120
    machine = ("train_seconds", "train_samples_per_second", "predict_ms_per_review")
    for name in BASELINE_NAMES:
        baseline = json.loads((root / f"metrics/baseline/{name}.json").read_text())
        assert baseline["accuracy_ci_low"] <= baseline["accuracy"] <= baseline["accuracy_ci_high"]
        assert 0 <= baseline["validation"]["accuracy"] <= 1 and baseline["features"] > 0
        assert not set(machine) & set(baseline)  # timings live in timings/, not in metrics/
        assert json.loads((root / f"timings/baseline/{name}.json").read_text())[
            "train_seconds"] >= 0
    assert (root / "exported/nbsvm/model.keras").exists()
    assert (root / "exported/tfidf_logreg/model.joblib").exists()
    hybrid = json.loads((root / "metrics/hybrid.json").read_text())
    assert hybrid["members"] == [E2E_HYBRID, "nbsvm"] and len(hybrid["weights"]) == 2
    assert 0 <= hybrid["accuracy"] <= 1 and 0 <= hybrid["validation"]["accuracy"] <= 1
    assert (root / "exported/hybrid/model.keras").exists()
    assert (root / "exported/hybrid/model_uri.txt").read_text().startswith("models:/")
    for arch in ARCHITECTURES:
        assert not set(machine) & {*json.loads((root / f"metrics/train/{arch}.json").read_text()),
                                   *json.loads((root / f"metrics/eval/{arch}.json").read_text())}
        assert json.loads((root / f"timings/train/{arch}.json").read_text())["train_seconds"] >= 0
        assert json.loads((root / f"timings/evaluate/{arch}.json").read_text())[
            "predict_ms_per_review"] >= 0
    for name in [*ARCHITECTURES, "hybrid", *BASELINE_NAMES]:
        predictions = pd.read_parquet(root / f"predictions/{name}.parquet")
        assert list(predictions.columns) == ["id", "label", "probability"]
        assert len(predictions) == 120
        for curve in ("roc", "precision_recall", "calibration"):
            assert len(pd.read_csv(root / f"plots/{curve}/{name}.csv")) >= 1
    table = pd.read_csv(root / "reports/comparison.csv")
    assert sorted(table.architecture) == sorted([*ARCHITECTURES, "hybrid", *BASELINE_NAMES])
    assert table.accuracy.is_monotonic_decreasing
    assert (table.accuracy_ci_low <= table.accuracy).all()
    for name in BASELINE_NAMES:  # each model against each baseline but itself
        assert table[f"vs_{name}_p_value"].between(0, 1).sum() == len(table) - 1
    assert (root / "reports/accuracy.png").exists()
    assert "train_seconds" not in table.columns
    timings = pd.read_csv(root / "reports/timings.csv")
    assert timings.architecture.tolist() == table.architecture.tolist()
    assert len(pd.read_csv(root / "reports/behavior.csv")) >= 300
    assert "## Promotion gates" in (root / "reports/comparison.md").read_text()
    page = (root / "reports/report.html").read_text()
    assert "data:image/png;base64," in page and "https://" not in page
    assert "Lesson 3: overfitting" in page


def test_lessons_write_their_tables_charts_and_metrics(project):
    root, _, _ = project
    all_params = yaml.safe_load((root / "params.yaml").read_text())
    params, prepared_maxlen = all_params["lessons"], all_params["prepare"]["maxlen"]
    lengths = pd.read_csv(root / "lessons/sequence_length.csv")
    assert len(lengths) == len(params["sequence_architectures"]) * len(params["maxlens"])
    assert sorted(lengths.maxlen.unique()) == sorted(params["maxlens"])
    assert lengths.accuracy.between(0, 1).all() and "train_seconds" not in lengths.columns
    for arch in params["sequence_architectures"]:  # at prepare.maxlen the lesson reuses evaluate's
        scores = json.loads((root / f"metrics/eval/{arch}.json").read_text())
        at_prepared = lengths[(lengths.architecture == arch) & (lengths.maxlen == prepared_maxlen)]
        assert at_prepared.accuracy.item() == scores["accuracy"]
        timings = json.loads((root / f"timings/sequence_length/{arch}.json").read_text())
        assert set(timings) == {f"maxlen_{m}" for m in params["maxlens"] if m != prepared_maxlen}
    for arch in params["gradient_architectures"]:
        norms = pd.read_csv(root / f"lessons/gradients/{arch}.csv")
        assert norms.distance.tolist() == list(range(1, params["gradient_timesteps"] + 1))
        assert (norms[["init", "trained"]] > 0).all().all()
    assert "test reviews" in (root / "lessons/gradients.md").read_text()
    for chart in ("sequence_length.png", "gradients.png"):
        assert (root / "lessons" / chart).read_bytes()[:4] == b"\x89PNG"


def test_dvc_plots_show_overlays_every_model(project):
    root, env, _ = project
    shown = subprocess.run(["dvc", "plots", "show", "--json"], cwd=root, env=env,
                           capture_output=True, text=True, timeout=300)
    plots = json.loads(shown.stdout)  # stderr warns of the missing files below
    # dvc.yaml's overlays name all ten models; only those not trained here may be missing
    missing = {Path(e.get("source", "?")).stem for e in plots.get("errors", [])}
    assert missing <= set(ALL_ARCHITECTURES) - set(ARCHITECTURES)
    roc = plots["data"]["roc"][0]["content"]["data"]["values"]
    assert {point["filename"] for point in roc} == {
        f"{name}.csv" for name in [*ARCHITECTURES, "hybrid", *BASELINE_NAMES]}


def test_each_architecture_is_one_mlflow_run_with_params_metrics_and_provenance(project):
    root, env, _ = project
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb-sentiment")
    runs = client.search_runs([experiment.experiment_id], "tags.architecture != ''")
    assert sorted(r.data.tags["architecture"] for r in runs) == sorted(ARCHITECTURES)
    head = run(["git", "rev-parse", "HEAD"], root, env).strip()
    for r in runs:
        arch = r.data.tags["architecture"]
        assert r.info.status == "FINISHED"
        assert r.data.tags["git_commit"] == head
        assert r.data.tags["git_code_differs"] in ("true", "false")
        assert r.data.tags["version.tensorflow"] != "not installed"
        assert len(r.data.tags["data_hash"]) == 64
        assert r.data.params["architecture"] == arch and "learning_rate" in r.data.params
        assert 0 <= r.data.metrics["test_accuracy"] <= 1
        epochs = json.loads((root / f"metrics/train/{arch}.json").read_text())["epochs"]
        assert len(client.get_metric_history(r.info.run_id, "val_loss")) == epochs
        assert "model" in {a.path for a in client.list_artifacts(r.info.run_id)}
    reports = client.search_runs([experiment.experiment_id], "tags.stage = 'report'")
    assert len(reports) == 1
    assert {"behavior_mft_pass_rate", "behavior_inv_pass_rate", "behavior_dir_pass_rate"} <= set(
        reports[0].data.metrics)
    for stage in ("lesson_sequence_length", "lesson_gradients"):
        lesson = client.search_runs([experiment.experiment_id], f"tags.stage = '{stage}'")
        assert len(lesson) == 1 and lesson[0].data.tags["git_commit"] == head
        assert "lessons" in {a.path for a in client.list_artifacts(lesson[0].info.run_id)}


def test_best_model_is_registered_as_champion_and_scores_raw_text(project):
    root, env, _ = project
    import mlflow

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    champion = client.get_model_version_by_alias("imdb-sentiment", "champion")
    decision = json.loads((root / "reports/promotion.json").read_text())
    assert decision["promoted"] and decision["version"] == champion.version
    assert decision["held_back_by"] == [] and set(decision["behavior_pass_rates"]) == {
        "mft", "inv", "dir"}
    assert "no champion yet" in decision["reason"]
    table = pd.read_csv(root / "reports/comparison.csv")
    best = table[~table.is_baseline].architecture.iloc[0]
    assert champion.tags["architecture"] == best
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/imdb-sentiment@champion")
    answer = model.predict(pd.DataFrame({"review": ["great wonderful", "awful terrible"]}))
    assert list(answer.columns) == ["probability"] and len(answer) == 2
    assert answer.probability.between(0, 1).all()


def test_second_repro_runs_nothing(project):
    root, env, _ = project
    log = run(["dvc", "repro"], root, env)
    assert "Running stage" not in log
    assert "Data and pipelines are up to date" in run(["dvc", "status"], root, env)


def test_editing_one_architecture_marks_only_its_stage(project):
    root, env, _ = project
    params_file = root / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["models"]["gru"]["units"] += 1
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = json.loads(run(["dvc", "status", "--json"], root, env))
    finally:
        params_file.write_text(original)
    # the defaults are part of the study; the lessons read models.gru too: lesson 1 retrains gru,
    # lesson 2 rebuilds its initial weights
    assert set(status) == {"tune@gru", "train@gru", "sequence_length@gru", "gradients@gru"}
