"""`imdb retrain`: everything the scheduled workflow does, as one command that runs anywhere.

dvc pull (when a remote is set) -> dvc repro -> dvc push -> a markdown summary: the stages that
ran, `dvc metrics diff` against a base revision, and whether the champion alias moved. The
champion rule itself lives in the `promote` stage (pipeline/reporting/registry.py); this
only reports it.
With --architecture it is one job of a fan-out (docs/operations.md#fanning-out): only those
architectures' stages, pushed with DVC's run cache, from which a later plain `imdb retrain`
restores them instead of training them again.
DVC is called through its command line, its stable interface; one gap in it is filled through
its Python API (push_uncached_outputs).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline import UserError
from pipeline.core.config import ParamsError, read_params
from pipeline.core.io import read_json
from pipeline.reporting import new_data

PROMOTION_FILE = Path("reports/promotion.json")
PROMOTE_STAGE = "promote"
RAN = re.compile(r"^Running stage '(.+)':", re.MULTILINE)
RESTORED = re.compile(r"^Stage '(.+)' is cached - skipping run", re.MULTILINE)
STAGE_ERROR = " ERROR pipeline: "  # how a stage logs the one line it stops with
INTAKE_STAGE = "intake"  # checks new labelled reviews: run before anything trains on them
STAGE_OF_AN_ITEM = re.compile(r"\S+@(\S+)")  # `dvc stage list` names: train@gru


@dataclass(frozen=True)
class Outcome:
    remote: str | None              # the default DVC remote, None when there is none
    stages_run: list[str] = field(default_factory=list)
    stages_restored: list[str] = field(default_factory=list)  # checked out from DVC's run cache
    decision: dict | None = None    # reports/promotion.json, when the promote stage ran
    base: str = "main"
    metrics_diff: str = ""          # `dvc metrics diff --md` against base
    diff_error: str | None = None   # why there is no diff, when there is none
    new_reviews: dict | None = None  # metrics/incoming.json, when new reviews arrived
    champion_on_new: dict | None = None  # the champion's accuracy on them, before retraining
    before_after: str = ""          # each model's test accuracy at base and now (markdown)


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
    """A stage's own error (it names the bad input and the fix), else DVC's last `ERROR:`
    line, else the last line it printed."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    own = [line.split(STAGE_ERROR, 1)[1] for line in lines if STAGE_ERROR in line]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (own or errors or lines or ["no output"])[-1]


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
        "### New labelled reviews", "",
        new_data.new_reviews_markdown(outcome.new_reviews, outcome.champion_on_new), "",
        f"### Test accuracy: `{outcome.base}` vs this run", "",
        outcome.before_after or "Not compared.", "",
        f"### Metrics: `{outcome.base}` vs this run", "", diff, ""])


def retrain(base: str = "main") -> Outcome:
    require_project()
    remote = default_remote()
    if remote is not None:
        # --allow-missing: a first run, against an empty remote, has nothing to pull yet.
        dvc("pull", "--allow-missing")
    checked, checked_restored = [], []
    if has_stage(INTAKE_STAGE):  # a bad batch of new reviews stops here, before any training
        checked, checked_restored = repro(remote, INTAKE_STAGE)
    champion = new_data.champion_on_new_reviews()
    ran, restored = repro(remote)
    ran, restored = in_order(checked, ran), in_order(checked_restored, restored)
    if remote is not None:
        push(ran)
    decision = read_json(PROMOTION_FILE) if PROMOTE_STAGE in ran else None
    diff, diff_error = metrics_diff(base)
    table = new_data.before_after_markdown(new_data.before_after(base), base)
    return Outcome(remote, ran, restored, decision, base, diff, diff_error,
                   new_data.intake_report(), champion, table)


def in_order(*stage_lists: list[str]) -> list[str]:
    """The stages of all lists, each once, in the order first named."""
    return list(dict.fromkeys(stage for stages in stage_lists for stage in stages))


def has_stage(name: str) -> bool:
    stages = yaml.safe_load(Path("dvc.yaml").read_text(encoding="utf-8")) or {}
    return name in (stages.get("stages") or {})


def publish(summary: str) -> None:
    """Print the summary; on GitHub Actions also append it to the job summary."""
    print(summary)
    if path := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(path, "a", encoding="utf-8") as f:
            f.write(summary + "\n")


# --- Fanning out: one job per architecture, then a plain `imdb retrain` (the report job) -------

@dataclass(frozen=True)
class ArchitectureRun:
    """What one fan-out job (`imdb retrain --architecture`) did."""
    architectures: list[str]
    remote: str | None              # the default DVC remote, None when there is none
    stages_run: list[str] = field(default_factory=list)
    stages_restored: list[str] = field(default_factory=list)


def require_project() -> None:
    if not Path("dvc.yaml").exists():
        raise UserError("no dvc.yaml here: run `imdb retrain` in the project's root directory")


def repro(remote: str | None, *targets: str) -> tuple[list[str], list[str]]:
    """`dvc repro [targets]`: (stages that ran, stages restored from the run cache).

    With a remote, --pull: a stage that another machine already ran (its run-cache entry and
    outputs pushed by `push`) is checked out from the remote instead of run again.
    """
    return stages_in(dvc("repro", *(["--pull"] if remote else []), *targets))


def push(stages_run: list[str], *options: str) -> None:
    """`dvc push --run-cache [options]`, then the stages' `cache: false` outputs (below)."""
    dvc("push", "--run-cache", *options)
    push_uncached_outputs(stages_run)


def push_uncached_outputs(stages: list[str]) -> None:
    """Push the `cache: false` outputs (metrics, plots) of `stages` to the DVC remote.

    `dvc push --run-cache` (DVC 3) sends each run-cache entry, which names every output of a
    stage run, but the files of cached outputs only: without the rest another machine's
    `dvc repro --pull` finds the entry, cannot check it out, and runs the stage again. `dvc
    repro` saved every output of a run it recorded in the local cache, so they are pushed from
    there, through DVC's Python API: no command names them (tests/e2e/test_fan_out.py checks
    that the stages are restored, not run).
    """
    if not stages:
        return
    from dvc.repo import Repo
    from dvc_data.hashfile.tree import Tree

    with Repo() as repo:
        objects = set()
        for stage in repo.index.stages:
            if stage.addressing not in stages or not recorded_in_run_cache(stage):
                continue
            for out in stage.outs:
                obj = None if out.use_cache else out.get_obj()
                if obj is not None:
                    objects.add(obj.hash_info)
                    if isinstance(obj, Tree):  # a directory: its listing and its files
                        objects.update(oid for _, _, oid in obj)
        failed = repo.cloud.push(objects).failed
    if failed:
        raise UserError(f"could not push {len(failed)} output file(s) of {', '.join(stages)} "
                        "to the DVC remote (see DVC's errors above); the next machine would "
                        "run those stages again. Rerun `imdb retrain` once the remote answers")


def recorded_in_run_cache(stage) -> bool:
    """Whether `dvc repro` records a run of this DVC stage in the run cache: DVC 3 records none
    for a stage with a `cache: false` file under `outs:` (uncached metrics and plots are fine),
    and then keeps no copy of its uncached files either."""
    return all(out.use_cache or out.is_metric or out.is_plot for out in stage.outs)


def architectures() -> list[str]:
    """params.yaml's `architectures`, in order: the job matrix of a fan-out.

    Read, not validated: validation loads Keras (seconds), and the stages validate params
    themselves when they run.
    """
    require_project()
    try:
        params = read_params()
    except ParamsError as err:
        raise UserError(str(err)) from None
    names = params.get("architectures") if isinstance(params, dict) else None
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise UserError("params.yaml `architectures` must be a non-empty list of "
                        f"architecture names, not {names!r}")
    return names


def architecture_stages(names: list[str]) -> list[str]:
    """The stages in dvc.yaml that run one of these architectures, `<stage>@<architecture>`:
    tune, train, evaluate, export, and the lessons' stages of the architectures they list.

    An architecture that params.yaml does not list is refused, naming those it does.
    """
    known = architectures()
    for name in names:
        if name not in known:
            raise UserError(f"--architecture {name}: not in params.yaml `architectures` "
                            f"({', '.join(known)}); pick one of those")
    listed = dvc("stage", "list", "--name-only", echo=False).split()
    return [stage for stage in listed
            if (item := STAGE_OF_AN_ITEM.fullmatch(stage)) and item[1] in names]


def retrain_architectures(names: list[str]) -> ArchitectureRun:
    """One fan-out job: these architectures' stages (and what they need, when it changed),
    then their outputs and run-cache entries to the DVC remote. No report, no promotion: the
    report job, a plain `imdb retrain` afterwards, restores these stages from the run cache.

    --with-deps: only the data these stages need is pulled, and only theirs is pushed.
    """
    require_project()
    targets = architecture_stages(names)
    remote = default_remote()
    if remote is not None:
        dvc("pull", "--allow-missing", "--with-deps", *targets)
    ran, restored = repro(remote, *targets)
    if remote is not None:
        push(ran, "--with-deps", *targets)
    return ArchitectureRun(list(names), remote, ran, restored)


def stage_names(stages: list[str]) -> str:
    return ", ".join(f"`{s}`" for s in stages) or "none"


def architectures_summary(run: ArchitectureRun) -> str:
    """The markdown summary of one fan-out job: what it ran, and what is left to the report."""
    if run.remote is None:
        storage = ("No DVC remote is configured: nothing was pulled or pushed, so no other "
                   "machine can restore these stages.")
    else:
        storage = (f"Data and models pulled from and pushed to the DVC remote `{run.remote}`, "
                   "with the run cache.")
    stages = f"Stages run: {stage_names(run.stages_run)}."
    if run.stages_restored:
        stages += f" Restored from DVC's run cache: {stage_names(run.stages_restored)}."
    return "\n".join([
        f"## Retraining {stage_names(run.architectures)}", "",
        f"- {storage}", f"- {stages}",
        "- The report and the champion are left to the report job (`imdb retrain` without "
        "--architecture), which restores these stages from the run cache.", ""])
