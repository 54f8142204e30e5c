"""`imdb retrain`: everything the scheduled workflow does, as one command that runs anywhere.

dvc pull (when a remote is set) -> dvc repro -> dvc push -> a markdown summary: the stages that
ran, `dvc metrics diff` against a base revision, and whether the champion alias moved. The
champion rule itself lives in the `promote` stage (pipeline/reporting/registry.py); this
only reports it.
DVC is called through its command line, its stable interface.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import UserError
from pipeline.core.io import read_json

PROMOTION_FILE = Path("reports/promotion.json")
PROMOTE_STAGE = "promote"
RAN = re.compile(r"^Running stage '(.+)':", re.MULTILINE)
RESTORED = re.compile(r"^Stage '(.+)' is cached - skipping run", re.MULTILINE)


@dataclass(frozen=True)
class Outcome:
    remote: str | None              # the default DVC remote, None when there is none
    stages_run: list[str] = field(default_factory=list)
    stages_restored: list[str] = field(default_factory=list)  # checked out from DVC's run cache
    decision: dict | None = None    # reports/promotion.json, when the promote stage ran
    base: str = "main"
    metrics_diff: str = ""          # `dvc metrics diff --md` against base
    diff_error: str | None = None   # why there is no diff, when there is none


def dvc(*args: str, echo: bool = True) -> str:
    """Run `dvc args`; return its output (stdout and stderr), echoed line by line as it comes.

    A failure raises a UserError naming the command and DVC's own error line.
    """
    command = ["dvc", *args]
    with subprocess.Popen([sys.executable, "-m", *command], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as process:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if echo:
                print(line, end="", flush=True)
    output = "".join(lines)
    if process.returncode != 0:
        raise UserError(f"`{' '.join(command)}` failed (exit {process.returncode}): "
                        f"{error_line(output)}")
    return output


def error_line(output: str) -> str:
    """DVC's last `ERROR:` line, else the last line it printed."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]


def default_remote() -> str | None:
    result = subprocess.run([sys.executable, "-m", "dvc", "remote", "default"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def stages_in(repro_log: str) -> tuple[list[str], list[str]]:
    """(stages that ran, stages restored from the run cache) in a `dvc repro` log."""
    return RAN.findall(repro_log), RESTORED.findall(repro_log)


def metrics_diff(base: str) -> tuple[str, str | None]:
    """(`dvc metrics diff <base> --md`, None), or ("", why) when DVC cannot compare."""
    result = subprocess.run([sys.executable, "-m", "dvc", "metrics", "diff", base, "--md"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return "", error_line(result.stderr + result.stdout)
    return result.stdout.strip(), None


def champion_line(outcome: Outcome) -> str:
    if outcome.decision is None:
        if "report" in outcome.stages_run:
            return ("Champion: **not moved** (the promote stage did not run: the report's "
                    "candidate is unchanged).")
        return "Champion: **not moved** (the report stage did not run: no new candidate)."
    d = outcome.decision
    candidate = (f"candidate `{d['candidate_architecture']}` (version {d['version']}, "
                 f"test accuracy {d['candidate_accuracy']:.4f})")
    if d["promoted"]:
        return f"Champion: **moved** to the {candidate}: {d['reason']}."
    return f"Champion: **not moved**; {candidate}: {d['reason']}."


def summary_markdown(outcome: Outcome) -> str:
    if outcome.remote is None:
        storage = "No DVC remote is configured: nothing was pulled or pushed."
    else:
        storage = (f"Data and models pulled from and pushed to the DVC remote "
                   f"`{outcome.remote}`.")
    if outcome.stages_run or outcome.stages_restored:
        ran = ", ".join(f"`{s}`" for s in outcome.stages_run) or "none"
        stages = f"Stages run: {ran}."
        if outcome.stages_restored:
            restored = ", ".join(f"`{s}`" for s in outcome.stages_restored)
            stages += f" Restored from DVC's run cache: {restored}."
    else:
        stages = "Nothing changed: no stage ran."
    if outcome.diff_error:
        diff = f"No comparison with `{outcome.base}`: {outcome.diff_error}"
    elif outcome.metrics_diff.count("\n") < 2:  # a header and a rule, no rows
        diff = f"No metric differs from `{outcome.base}`."
    else:
        diff = outcome.metrics_diff
    return "\n".join([
        "## Scheduled retraining", "",
        f"- {storage}", f"- {stages}", f"- {champion_line(outcome)}", "",
        f"### Metrics: `{outcome.base}` vs this run", "", diff, ""])


def retrain(base: str = "main") -> Outcome:
    if not Path("dvc.yaml").exists():
        raise UserError("no dvc.yaml here: run `imdb retrain` in the project's root directory")
    remote = default_remote()
    if remote is not None:
        # --allow-missing: a first run, against an empty remote, has nothing to pull yet.
        dvc("pull", "--allow-missing")
    ran, restored = stages_in(dvc("repro"))
    if remote is not None:
        dvc("push")
    decision = read_json(PROMOTION_FILE) if PROMOTE_STAGE in ran else None
    diff, diff_error = metrics_diff(base)
    return Outcome(remote, ran, restored, decision, base, diff, diff_error)


def publish(summary: str) -> None:
    """Print the summary; on GitHub Actions also append it to the job summary."""
    print(summary)
    if path := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(path, "a", encoding="utf-8") as f:
            f.write(summary + "\n")
