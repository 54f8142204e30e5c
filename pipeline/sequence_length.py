"""Lesson 1, stages `sequence_length@<arch>` and `sequence_length_summary`: short vs long reviews.

Each of lessons.sequence_architectures is scored on the test set with reviews cut to each length
in lessons.maxlens.
The prepared sequences are padded and truncated at prepare.maxlen, so their last m columns are
exactly the encoding at maxlen m (`cut`): nothing is tokenized again. At prepare.maxlen the
lesson reuses what the train and evaluate stages measured; at every other length it trains the
architecture afresh with the train stage's hyperparameters and settings, over lessons.max_epochs
epochs instead of train.max_epochs.

Reads data/prepared, tuned/<arch>.json, metrics/train/<arch>.json and metrics/eval/<arch>.json.
Writes lessons/sequence_length/<arch>.json and timings/sequence_length/<arch>.json; the
summary writes lessons/sequence_length.{csv,md,png}.

    python -m pipeline.sequence_length <arch>   # lessons/sequence_length/<arch>.json and
                                                # timings/sequence_length/<arch>.json
    python -m pipeline.sequence_length summary  # lessons/sequence_length.{csv,md,png}, MLflow run
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import keras
import matplotlib
import pandas as pd

from pipeline import UserError
from pipeline.core import tracking
from pipeline.core.batching import predict_proba
from pipeline.core.config import Params, load_params
from pipeline.core.data import SPLITS, cut, load_split
from pipeline.core.io import atomic_path, read_json, write_json
from pipeline.core.metrics import classification_metrics
from pipeline.core.models import build_model
from pipeline.core.paths import EVAL_METRICS_DIR, LESSONS_DIR, PREPARED_DIR, TRAIN_METRICS_DIR
from pipeline.core.stage import architecture_stage_app
from pipeline.core.training import (
    compile_model,
    fit,
    hyperparameters,
    start_embedding,
    summarize,
    training_timings,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

log = logging.getLogger(__name__)

RESULTS_DIR = LESSONS_DIR / "sequence_length"
SUMMARY = LESSONS_DIR / "sequence_length"  # .csv, .md, .png
# Training time at each length this lesson trains (the train stage's is in timings/train/):
# machine figures, kept out of lessons/ so that the same params give the same lesson files.
TIMINGS_DIR = Path("timings/sequence_length")
COLUMNS = ["architecture", "maxlen", "accuracy", "roc_auc", "epochs", "best_epoch", "source"]






def train_and_score(architecture: str, maxlen: int, data: dict, params: Params
                    ) -> tuple[dict, dict]:
    """Train `architecture` on reviews cut to `maxlen` tokens and score it on the test set.

    Returns (scores, timings): what the model scored, and how long training took here."""
    model_params = hyperparameters(params, architecture)
    train = dataclasses.replace(params.train, max_epochs=params.lessons.max_epochs)
    short = {split: (cut(x, maxlen, params.prepare), y) for split, (x, y) in data.items()}
    keras.utils.set_random_seed(params.seed)
    model = build_model(architecture, params.prepare.vocab_size, maxlen,
                        **model_params.hyperparameters)
    start_embedding(model, architecture, params)
    compile_model(model, model_params.learning_rate, train, model_params.optimizer)
    history, seconds = fit(model, short, model_params, train, params.prepare.padding, params.seed)
    x_test, y_test = short["test"]
    probability = predict_proba(model, x_test, params.evaluate.batch_size, train.bucket_width,
                                params.prepare.padding)
    scores = classification_metrics(y_test, probability, params.evaluate.threshold)
    return (_row(scores, summarize(history, model, train)),
            training_timings(history, seconds, len(short["train"][1])))


def reused_scores(architecture: str) -> dict:
    """What the train and evaluate stages measured at prepare.maxlen."""
    return _row(read_json(EVAL_METRICS_DIR / f"{architecture}.json"),
                read_json(TRAIN_METRICS_DIR / f"{architecture}.json"))


def _row(scores: dict, training: dict) -> dict:
    return {"accuracy": scores["accuracy"], "roc_auc": scores["roc_auc"],
            "epochs": training["epochs"], "best_epoch": training["best_epoch"]}


def summary_table(results: dict[str, dict], reused_maxlen: int) -> pd.DataFrame:
    """One row per (architecture, maxlen) from the per-architecture results."""
    rows = [{"architecture": arch, "maxlen": int(key.removeprefix("maxlen_")), **scores,
             "source": "train stage" if int(key.removeprefix("maxlen_")) == reused_maxlen
             else "this lesson"}
            for arch, by_length in results.items() for key, scores in by_length.items()]
    return pd.DataFrame(rows)[COLUMNS].sort_values(["architecture", "maxlen"]).reset_index(
        drop=True)


def to_markdown(table: pd.DataFrame, params: Params) -> str:
    maxlens = sorted(table.maxlen.unique())
    wide = table.pivot(index="architecture", columns="maxlen", values="accuracy")
    wide = wide.sort_values(maxlens[-1], ascending=False)
    epochs = table.pivot(index="architecture", columns="maxlen", values="best_epoch")
    header = ("| architecture | " + " | ".join(f"accuracy @{m}" for m in maxlens)
              + f" | {maxlens[-1]} vs {maxlens[0]} | "
              + " | ".join(f"best epoch @{m}" for m in maxlens) + " |")
    rule = "|---|" + "---:|" * (2 * len(maxlens) + 1)
    lines = [f"| {arch} | " + " | ".join(f"{row[m]:.4f}" for m in maxlens)
             + f" | {row[maxlens[-1]] - row[maxlens[0]]:+.4f} | "
             + " | ".join(str(int(epochs.loc[arch, m])) for m in maxlens) + " |"
             for arch, row in wide.iterrows()]
    reused = params.prepare.maxlen
    how = ("early stopping, up to" if params.train.schedule == "plateau"
           else f"{params.train.schedule} schedule over")
    caption = (
        "Test accuracy with each review cut to maxlen tokens, padded and truncated as in "
        "`prepare`. Same hyperparameters at every length. "
        + (f"maxlen {reused}: the train stage's models ({how} "
           f"train.max_epochs = {params.train.max_epochs} epochs); " if reused in maxlens else "")
        + f"other lengths: trained by this lesson ({how} lessons.max_epochs "
        f"= {params.lessons.max_epochs} epochs).")
    return "\n".join(["# Lesson 1: short vs long sequences", "", caption, "", header, rule,
                      *lines, ""])


def accuracy_chart(table: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.get_cmap("tab10")
    for i, (arch, rows) in enumerate(table.groupby("architecture", sort=True)):
        ax.plot(rows.maxlen, rows.accuracy, marker="o", color=colors(i % 10), label=arch)
    ax.set_xticks(sorted(table.maxlen.unique()))
    ax.set_xlabel("maxlen (tokens kept from the end of each review)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Lesson 1: test accuracy against sequence length")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(architecture: str) -> None:
    params = load_params()
    hyperparameters(params, architecture)  # an unknown architecture fails here, naming the choices
    data = {split: load_split(split) for split in SPLITS}
    results, timings = {}, {}
    for maxlen in params.lessons.maxlens:
        key = f"maxlen_{maxlen}"
        if maxlen == params.prepare.maxlen:
            results[key] = reused_scores(architecture)
        else:
            results[key], timings[key] = train_and_score(architecture, maxlen, data, params)
        log.info("%s at maxlen %d: %s %s", architecture, maxlen, results[key],
                 timings.get(key, "(the train stage's model)"))
    write_json(RESULTS_DIR / f"{architecture}.json", results)
    write_json(TIMINGS_DIR / f"{architecture}.json", timings)


def main_summary() -> None:
    params = load_params()
    architectures = params.lessons.sequence_architectures
    missing = [a for a in architectures if not (RESULTS_DIR / f"{a}.json").exists()]
    if missing:
        raise UserError(f"no lesson 1 results for {', '.join(missing)}: "
                        "run `dvc repro sequence_length_summary`")
    results = {a: read_json(RESULTS_DIR / f"{a}.json") for a in architectures}
    table = summary_table(results, params.prepare.maxlen)
    if sorted(table.maxlen.unique()) != sorted(params.lessons.maxlens):
        raise UserError(f"{RESULTS_DIR} holds other lengths than lessons.maxlens: "
                        "run `dvc repro sequence_length_summary`")
    outputs = [SUMMARY.with_suffix(s) for s in (".csv", ".md", ".png")]
    with atomic_path(outputs[0]) as csv, atomic_path(outputs[1]) as md, \
            atomic_path(outputs[2]) as png:
        table.to_csv(csv, index=False)
        md.write_text(to_markdown(table, params), encoding="utf-8")
        accuracy_chart(table, png)
        tracking.log_lesson(
            "lesson_sequence_length",
            {"lessons.sequence_architectures": list(architectures),
             "lessons.maxlens": list(params.lessons.maxlens),
             "lessons.max_epochs": params.lessons.max_epochs,
             "prepare.maxlen": params.prepare.maxlen},
            {f"{row.architecture}_accuracy_maxlen_{row.maxlen}": row.accuracy
             for row in table.itertuples()},
            [csv, md, png], PREPARED_DIR)
    log.info("wrote %s", ", ".join(map(str, outputs)))


if __name__ == "__main__":
    architecture_stage_app(__doc__, main, main_summary)()
