"""`imdb retrain`'s pieces: reading a `dvc repro` log, the summary, and its failures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from helpers import PROJECT_ROOT
from typer.testing import CliRunner

from pipeline import retrain as retraining
from pipeline.cli import app
from pipeline.retrain import Outcome, error_line, stages_in, summary_markdown

REPRO_LOG = """\
Stage 'download' didn't change, skipping
Running stage 'train@gru':
> python -m pipeline.train gru
Stage 'train@lstm' is cached - skipping run, checking out outputs
Running stage 'report':
> python -m pipeline.report
Use `dvc push` to send your updates to remote storage.
"""
DIFF = """\
| Path                 | Metric   | main   | workspace   | Change   |
|----------------------|----------|--------|-------------|----------|
| metrics/eval/gru.json | accuracy | 0.85   | 0.86        | 0.01     |"""
WIN = {"promoted": True, "reason": "beats the champion by +0.0100 (margin 0.002)",
       "candidate_architecture": "gru", "candidate_accuracy": 0.86, "version": "3"}


def test_stages_that_ran_and_that_were_restored_are_read_from_the_repro_log():
    assert stages_in(REPRO_LOG) == (["train@gru", "report"], ["train@lstm"])
    assert stages_in("Data and pipelines are up to date.\n") == ([], [])


def test_summary_of_a_win_names_stages_new_champion_and_metrics():
    text = summary_markdown(Outcome("storage", ["train@gru", "report"], ["train@lstm"], WIN,
                                    "main", DIFF))
    assert "DVC remote `storage`" in text
    assert "Stages run: `train@gru`, `report`. Restored from DVC's run cache: `train@lstm`." in text
    assert "Champion: **moved** to the candidate `gru` (version 3, test accuracy 0.8600)" in text
    assert DIFF in text


def test_summary_when_the_candidate_loses():
    loss = {**WIN, "promoted": False, "reason": "does not beat the champion by the margin"}
    text = summary_markdown(Outcome(None, ["report"], [], loss, "main", DIFF))
    assert "No DVC remote is configured" in text
    assert "Champion: **not moved**; candidate `gru`" in text and loss["reason"] in text


def test_summary_when_nothing_changed_or_there_is_no_base():
    header = "\n".join(DIFF.splitlines()[:2])
    text = summary_markdown(Outcome("storage", metrics_diff=header, base="v1"))
    assert "Nothing changed: no stage ran." in text
    assert "Champion: **not moved** (the report stage did not run" in text
    assert "No metric differs from `v1`." in text
    text = summary_markdown(Outcome("storage", diff_error="ERROR: unknown Git revision 'v1'"))
    assert "No comparison with `main`: ERROR: unknown Git revision 'v1'" in text


def test_error_line_is_dvcs_last_error():
    assert error_line("a\nERROR: first\nb\nERROR: failed to reproduce 'x'\nc\n") == \
        "ERROR: failed to reproduce 'x'"
    assert error_line("just this\n\n") == "just this"


def test_outside_a_project_it_says_where_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["retrain"])
    assert result.exit_code == 1
    assert "no dvc.yaml here: run `imdb retrain` in the project's root" in result.output


@pytest.mark.slow  # `imdb retrain` runs a real `dvc repro` (of a one-stage broken pipeline)
def test_a_failing_stage_stops_it_with_the_command_and_dvcs_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, check=True)
    (tmp_path / "dvc.yaml").write_text("stages:\n  broken:\n    cmd: exit 3\n    outs: [x]\n")
    result = CliRunner().invoke(app, ["retrain"])
    assert result.exit_code == 1
    assert "error: `dvc repro` failed (exit 255): ERROR: failed to reproduce 'broken'" in \
        result.output
    assert "Champion" not in result.output


# --- Fanning out: `imdb retrain --list-architectures` and `--architecture` -----------------

STAGE_LIST = """\
download
prepare
tune@gru
tune@lstm
train@gru
train@lstm
baseline@nbsvm
export@gru
report
sequence_length@gru
sequence_length_summary
"""


@pytest.fixture
def fan_out_project(tmp_path, monkeypatch):
    """A directory with a dvc.yaml and params.yaml listing gru and lstm; `dvc stage list`
    answers STAGE_LIST."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("architectures: [gru, lstm]\n")
    calls = []

    def dvc(*args, echo=True):
        calls.append(args)
        assert args == ("stage", "list", "--name-only")
        return STAGE_LIST

    monkeypatch.setattr(retraining, "dvc", dvc)
    return calls


def test_list_architectures_prints_params_yamls_as_json(fan_out_project):
    result = CliRunner().invoke(app, ["retrain", "--list-architectures"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == ["gru", "lstm"]


@pytest.mark.parametrize("listed", ["gru", "[]", "[gru, 3]"])
def test_list_architectures_refuses_a_list_that_is_not_one(fan_out_project, tmp_path, listed):
    (tmp_path / "params.yaml").write_text(f"architectures: {listed}\n")
    result = CliRunner().invoke(app, ["retrain", "--list-architectures"])
    assert result.exit_code == 1
    assert "params.yaml `architectures` must be a non-empty list of architecture names" in \
        result.output


def test_an_architectures_stages_are_every_stage_at_its_name(fan_out_project):
    assert retraining.architecture_stages(["gru"]) == [
        "tune@gru", "train@gru", "export@gru", "sequence_length@gru"]
    assert retraining.architecture_stages(["lstm", "gru"]) == [
        "tune@gru", "tune@lstm", "train@gru", "train@lstm", "export@gru", "sequence_length@gru"]


def test_an_architecture_params_yaml_does_not_list_is_refused_naming_those_it_does(
        fan_out_project):
    result = CliRunner().invoke(app, ["retrain", "--architecture", "gru",
                                      "--architecture", "nbsvm"])
    assert result.exit_code == 1
    assert "error: --architecture nbsvm: not in params.yaml `architectures` (gru, lstm)" in \
        result.output
    assert fan_out_project == []  # refused before DVC ran


def test_summary_of_a_fan_out_job_leaves_the_champion_to_the_report_job():
    run = retraining.ArchitectureRun(["gru"], "storage", ["train@gru"], ["prepare"])
    text = retraining.architectures_summary(run)
    assert text.startswith("## Retraining `gru`")
    assert "DVC remote `storage`, with the run cache" in text
    assert "Stages run: `train@gru`. Restored from DVC's run cache: `prepare`." in text
    assert "left to the report job" in text
    alone = retraining.architectures_summary(retraining.ArchitectureRun(["gru"], None))
    assert "No DVC remote is configured" in alone and "Stages run: none." in alone


# The foreach groups whose stages a fan-out job runs (one per architecture).
PER_ARCHITECTURE = {"${architectures}", "${lessons.sequence_architectures}",
                    "${lessons.gradient_architectures}"}


def test_every_stage_of_an_architecture_can_be_restored_from_the_run_cache():
    """DVC 3 saves no run-cache entry for a stage with an `outs` entry marked `cache: false`
    (metrics and plots may be): the report job would run such a stage again, and a tune stage
    would repeat its whole study. Declare such files under `metrics:` or `plots:`."""
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    uncached = {name: [path for out in stage["do"].get("outs", []) if isinstance(out, dict)
                       for path, options in out.items() if options.get("cache") is False]
                for name, stage in stages.items() if stage.get("foreach") in PER_ARCHITECTURE}
    assert uncached and {name: paths for name, paths in uncached.items() if paths} == {}
