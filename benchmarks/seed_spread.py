"""Seed spread: does an architecture's test accuracy, or the ranking, hinge on the training seed?

    python benchmarks/seed_spread.py            # after `dvc repro prepare`, from the root
    python benchmarks/seed_spread.py --architectures gru lstm --seeds 42 43 44

Per architecture and seed, trains as the train stage does (pipeline.train: the hyperparameters
of final_model_params, compile_model, fit with early stopping and the learning-rate schedule,
best weights restored) and scores the test split at evaluate.threshold. Per architecture: the
accuracy at each seed, their mean and spread (max - min, in points) against the 1-point target,
beside the width of the bootstrap CI of the committed run (metrics/eval/<arch>.json). The CI
covers resampling the test reviews, the spread retraining with another seed: two different
sources of noise. Then, for each architecture against the next best one by mean accuracy,
whether the gap exceeds the larger seed spread of the two and whether their CIs overlap.
Writes benchmarks/results/seed_spread.{csv,md} after each architecture, so a stopped run keeps
what it measured; rows of architectures this run does not measure are kept from the existing
CSV when they used the same seeds (their CI columns re-read), so the table can be filled in
over several runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import itertools
import shlex
import sys
import time
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.training_throughput import machine, markdown  # noqa: E402
from pipeline.core.config import Params, load_params  # noqa: E402
from pipeline.core.data import SPLITS, load_split
from pipeline.core.io import atomic_path, read_json  # noqa: E402
from pipeline.core.models import build_model  # noqa: E402
from pipeline.core.paths import (
    EVAL_METRICS_DIR,  # noqa: E402
    PREPARED_DIR,  # noqa: E402
    TRAIN_METRICS_DIR,
    TUNED_DIR,
)
from pipeline.core.training import (
    best_epoch,
    compile_model,
    final_model_params,
    fit,
    start_embedding,
)
from pipeline.tune import test_accuracy  # noqa: E402

OUT = Path("benchmarks/results/seed_spread")
SEEDS = (42, 43, 44)
TARGET_POINTS = 1.0  # the bound on max - min test accuracy over the seeds


class Setup(NamedTuple):
    params: Params
    data: dict
    tuned_dir: Path
    committed: tuple[Path, Path] | None = None  # (eval_dir, train_metrics_dir) for params.seed


def train_once(setup: Setup, architecture: str, seed: int) -> dict:
    """One training of `architecture` as train@<arch> runs it, with `seed`, scored on test.
    With setup.committed, params.seed's is read from the committed run (the same training)."""
    if setup.committed and seed == setup.params.seed:
        return committed_run(setup, architecture)
    params = dataclasses.replace(setup.params, seed=seed)
    model_params, tuned = final_model_params(params, architecture, setup.tuned_dir)
    started = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_model(architecture, params.prepare.vocab_size, params.prepare.maxlen,
                        **model_params.hyperparameters)
    start_embedding(model, architecture, params)
    compile_model(model, model_params.learning_rate, params.train, model_params.optimizer)
    history, _ = fit(model, setup.data, model_params, params.train, params.prepare.padding,
                     seed)
    accuracy = test_accuracy(model, setup.data["test"], params)
    best = best_epoch(history, params.train)
    return {"accuracy": accuracy, "epochs": len(history), "best_epoch": int(best.epoch),
            "best_val_accuracy": round(float(best.val_accuracy), 4), "tuned": tuned,
            "seconds": time.perf_counter() - started}


def committed_run(setup: Setup, architecture: str) -> dict:
    eval_dir, train_dir = setup.committed
    trained = read_json(train_dir / f"{architecture}.json")
    return {"accuracy": read_json(eval_dir / f"{architecture}.json")["accuracy"],
            "epochs": trained["epochs"], "best_epoch": trained["best_epoch"],
            "best_val_accuracy": trained["best_val_accuracy"],
            "tuned": final_model_params(setup.params, architecture, setup.tuned_dir)[1],
            "seconds": 0.0}


def committed_ci(architecture: str, eval_dir: Path) -> tuple[float, float]:
    """(low, high) of the committed run's accuracy CI; NaN where evaluate has not run."""
    path = eval_dir / f"{architecture}.json"
    if not path.exists():
        return np.nan, np.nan
    scores = read_json(path)
    return scores.get("accuracy_ci_low", np.nan), scores.get("accuracy_ci_high", np.nan)


def ci_columns(ci: tuple[float, float]) -> dict:
    return {"ci_low": ci[0], "ci_high": ci[1], "ci_width_points": round((ci[1] - ci[0]) * 100, 2)}


def listed(values) -> str:
    return " ".join(str(v) for v in values)


def architecture_row(architecture: str, runs: list[dict], seeds: list[int],
                     ci: tuple[float, float]) -> dict:
    accuracies = [run["accuracy"] for run in runs]
    spread = round((max(accuracies) - min(accuracies)) * 100, 2)
    return {
        "architecture": architecture,
        "tuned": runs[0]["tuned"],
        "seeds": listed(seeds),
        "test_accuracies": listed(accuracies),
        "mean_accuracy": round(float(np.mean(accuracies)), 4),
        "spread_points": spread,
        "within_1_point": spread <= TARGET_POINTS,
        **ci_columns(ci),
        "best_epochs": listed(run["best_epoch"] for run in runs),
        "epochs": listed(run["epochs"] for run in runs),
        "best_val_accuracies": listed(run["best_val_accuracy"] for run in runs),
        "train_minutes": round(sum(run["seconds"] for run in runs) / 60, 1),
        "measured": f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M}",
    }


def earlier_rows(out: Path, measured: list[str], seeds: list[int], eval_dir: Path) -> list[dict]:
    """Rows of out.csv for other architectures with the same seeds, CI columns re-read."""
    path = out.with_suffix(".csv")
    if not path.exists():
        return []
    table = pd.read_csv(path, dtype={"seeds": str})
    kept = table[~table.architecture.isin(measured) & (table.seeds == listed(seeds))]
    return [{**row, **ci_columns(committed_ci(row["architecture"], eval_dir))}
            for row in kept.to_dict("records")]


def measure(setup: Setup, architecture: str, seeds: list[int], eval_dir: Path) -> dict:
    runs = []
    for seed in seeds:
        runs.append(train_once(setup, architecture, seed))
        print(f"{architecture} seed {seed}: test accuracy {runs[-1]['accuracy']:.4f} "
              f"(best epoch {runs[-1]['best_epoch']}) in {runs[-1]['seconds']:.0f} s",
              flush=True)
    return architecture_row(architecture, runs, seeds, committed_ci(architecture, eval_dir))


def ci_text(row) -> str:
    if pd.isna(row.ci_low) or pd.isna(row.ci_high):
        return "no committed CI"
    return f"CI {row.ci_low * 100:.1f}-{row.ci_high * 100:.1f}"


def comparison(better, worse) -> str:
    """`better` against the next best architecture: does the order survive seed and CI?"""
    gap = (better.mean_accuracy - worse.mean_accuracy) * 100
    spread = max(better.spread_points, worse.spread_points)
    seed_verdict = ("exceeds" if gap > spread else "does not exceed") + \
        f" the larger seed spread ({spread:.2f})"
    if pd.isna([better.ci_low, better.ci_high, worse.ci_low, worse.ci_high]).any():
        ci_verdict = "CIs unknown"
    else:
        ci_verdict = ("CIs do not overlap" if better.ci_low > worse.ci_high
                      else "CIs overlap" if worse.ci_low <= better.ci_high
                      else "CIs do not overlap but rank them the other way")
    survives = gap > spread and ci_verdict == "CIs do not overlap"
    return (f"{better.architecture} > {worse.architecture}: gap {gap:.2f} points {seed_verdict}; "
            f"{ci_verdict} ({ci_text(better)}, {ci_text(worse)}) -> "
            + ("survives both" if survives else "not robust"))


def summary(table: pd.DataFrame) -> list[str]:
    """Within-target count, then one line per adjacent pair ranked by mean accuracy."""
    ranked = list(table.sort_values("mean_accuracy", ascending=False).itertuples(index=False))
    within = int(table.within_1_point.sum())
    return [f"{within} of {len(table)} architectures within {TARGET_POINTS:g} point of spread",
            *(comparison(better, worse) for better, worse in itertools.pairwise(ranked))]


def header(args: argparse.Namespace, argv: list[str] | None, params: Params) -> list[str]:
    command = shlex.join(["python", "benchmarks/seed_spread.py",
                          *(sys.argv[1:] if argv is None else argv)])
    level = f"{params.evaluate.confidence:.0%}"
    return [f"Test accuracy over training seeds {listed(args.seeds)} ({args.params}, "
            f"{args.prepared_dir})", "",
            f"- machine: {machine()}",
            f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
            f"- command: `{command}`",
            f"- spread_points: max - min test accuracy over the seeds, in points (target <= "
            f"{TARGET_POINTS:g}); accuracy at probability >= {params.evaluate.threshold}",
            f"- ci_low, ci_high: {level} bootstrap CI over the test reviews of the committed "
            f"run (seed {params.seed}, {args.eval_dir}); blank where it has not been evaluated",
            "- best_epochs, best_val_accuracies: the epoch whose weights are kept (train.schedule "
            f"{params.train.schedule}: " + ("the last" if params.train.schedule == "cosine"
                                           else "the lowest val_loss")
            + ") and its val_accuracy, per seed",
            "- comparisons: each architecture against the next best by mean accuracy; the "
            "order holds across seeds when the gap exceeds the larger spread of the two"]


def write(table: pd.DataFrame, lines: list[str], out: Path) -> str:
    report = markdown(table, lines) + "\n" + "\n".join(f"- {s}" for s in summary(table)) + "\n"
    with atomic_path(out.with_suffix(".csv")) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(report, encoding="utf-8")
    return report


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Params, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--architectures", nargs="+", help="default: all in --params")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--prepared-dir", type=Path, default=PREPARED_DIR)
    parser.add_argument("--tuned-dir", type=Path, default=TUNED_DIR)
    parser.add_argument("--eval-dir", type=Path, default=EVAL_METRICS_DIR,
                        help="where the committed runs' CIs are read")
    parser.add_argument("--out", type=Path, default=OUT, help="writes OUT.csv and OUT.md")
    parser.add_argument("--committed-seed", action="store_true",
                        help="read the seed of --params from the committed run (--eval-dir, "
                        "--train-metrics-dir) instead of training it again")
    parser.add_argument("--train-metrics-dir", type=Path, default=TRAIN_METRICS_DIR)
    args = parser.parse_args(argv)
    params = load_params(args.params)
    architectures = args.architectures or list(params.architectures)
    if unknown := [a for a in architectures if a not in params.models]:
        parser.error(f"{', '.join(unknown)} not in {args.params}")
    if absent := [s for s in SPLITS if not (args.prepared_dir / f"{s}.npz").exists()]:
        parser.error(f"{args.prepared_dir} has no {', '.join(absent)}.npz: "
                     "run `dvc repro prepare` first, or pass --prepared-dir")
    if args.committed_seed and params.seed in args.seeds:
        absent = [str(d / f"{a}.json") for a in architectures
                  for d in (args.eval_dir, args.train_metrics_dir)
                  if not (d / f"{a}.json").exists()]
        if absent:
            parser.error(f"--committed-seed: no committed run in {', '.join(absent)}: run "
                         "`dvc repro` first, or drop --committed-seed")
    return args, params, architectures


def main(argv: list[str] | None = None) -> None:
    args, params, architectures = parse(argv)
    setup = Setup(params, {split: load_split(split, args.prepared_dir) for split in SPLITS},
                  args.tuned_dir,
                  (args.eval_dir, args.train_metrics_dir) if args.committed_seed else None)
    earlier = earlier_rows(args.out, architectures, args.seeds, args.eval_dir)
    lines, rows = header(args, argv, params), []
    if args.committed_seed:
        lines.append(f"- seed {params.seed}: read from the committed run ({args.eval_dir}, "
                     f"{args.train_metrics_dir}: the same training), not trained again; "
                     "train_minutes counts the other seeds")
    if earlier:
        lines.append(f"- kept from earlier runs of this script (see `measured`): "
                     f"{', '.join(row['architecture'] for row in earlier)}")
    order = {name: i for i, name in enumerate(params.architectures)}
    for architecture in architectures:
        rows.append(measure(setup, architecture, args.seeds, args.eval_dir))
        table = pd.DataFrame(sorted([*earlier, *rows],
                                    key=lambda row: order.get(row["architecture"], len(order))))
        report = write(table, lines, args.out)
    print(report)
    print(f"wrote {args.out.with_suffix('.csv')} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
