"""Lesson 2, stages `gradients@<arch>` and `gradients_summary`: do gradients vanish?

For each architecture in lessons.gradient_architectures: the L2 norm of d loss / d (embedded
token at step t), averaged over test reviews that fill lessons.gradient_timesteps tokens (no
padding, so every step is a real word), at initialization (the weights the train stage started
from: same builder, same seed) and after training (models/<arch>/model.keras). Plotted on a log
scale against the distance from the end of the review (1 = last word).

Reads data/prepared, tuned/<arch>.json and models/<arch>/model.keras. Writes
lessons/gradients/<arch>.{csv,json}; the summary writes lessons/gradients.{csv,md,png}.

    python -m pipeline.gradients <arch>   # lessons/gradients/<arch>.{csv,json}
    python -m pipeline.gradients summary  # lessons/gradients.{csv,md,png}, one MLflow run
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import keras
import matplotlib
import numpy as np
import pandas as pd
import tensorflow as tf

from pipeline import UserError
from pipeline.core import tracking
from pipeline.core.config import Params, load_params
from pipeline.core.data import PAD, cut, load_split
from pipeline.core.io import atomic_path, read_json, write_json
from pipeline.core.models import build_model
from pipeline.core.paths import LESSONS_DIR, MODEL_FILE, MODELS_DIR, PREPARED_DIR
from pipeline.core.stage import architecture_stage_app
from pipeline.core.training import hyperparameters, start_embedding

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

log = logging.getLogger(__name__)

RESULTS_DIR = LESSONS_DIR / "gradients"
SUMMARY = LESSONS_DIR / "gradients"  # .csv, .md, .png
STATES = ("init", "trained")
# first-word / last-word gradient-norm ratio below which the gradient has vanished (3 orders of
# magnitude or more lost over the review), or has decayed
VANISHED, DECAYED = 1e-3, 0.5


def after_embedding(model: keras.Model, embedded, mask):
    """The model's output computed from its embedding layer's output.

    Runs the layers after the embedding one by one (the models built in pipeline.core.models are
    chains), passing the padding mask on the way Keras would.
    """
    x = embedded
    for layer in model.layers[model.layers.index(model.get_layer("embedding")) + 1:]:
        takes_mask = mask is not None and "mask" in inspect.signature(layer.call).parameters
        inputs = x
        x = layer(x, mask=mask, training=False) if takes_mask else layer(x, training=False)
        mask = layer.compute_mask(inputs, mask)
    return x


def gradient_norms(model: keras.Model, tokens: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean over reviews of ||d loss_i / d e_it||, e_it the embedded token t of review i.

    Shape: (timesteps,), in input order (the last entry is the last word).
    """
    embedding = model.get_layer("embedding")
    tokens = tf.convert_to_tensor(tokens, dtype="int32")
    embedded = embedding(tokens)
    with tf.GradientTape() as tape:
        tape.watch(embedded)
        probability = after_embedding(model, embedded, embedding.compute_mask(tokens))
        # summed, so each review's gradient is that of its own loss, whatever the batch size
        loss = keras.ops.sum(keras.losses.binary_crossentropy(
            tf.reshape(tf.cast(labels, probability.dtype), (-1, 1)), probability))
    gradient = tape.gradient(loss, embedded)
    return tf.reduce_mean(tf.norm(gradient, axis=-1), axis=0).numpy()


def long_reviews(x: np.ndarray, y: np.ndarray, timesteps: int, count: int, seed: int,
                 prepare) -> tuple[np.ndarray, np.ndarray]:
    """Up to `count` reviews, chosen with `seed`, that fill `timesteps` tokens; cut to them."""
    window = cut(x, timesteps, prepare)
    rows = np.flatnonzero((window != PAD).all(axis=1))
    if not len(rows):
        raise UserError(f"no test review has {timesteps} tokens or more: lower "
                        "lessons.gradient_timesteps")
    rows = np.sort(np.random.default_rng(seed).choice(rows, min(count, len(rows)), replace=False))
    return window[rows], y[rows]


def decay_summary(norms: np.ndarray) -> dict:
    """Norms at both ends and their ratio; the earliest word is the first entry."""
    ratio = float(norms[0] / norms[-1])
    return {"norm_at_last_word": float(norms[-1]), "norm_at_first_word": float(norms[0]),
            "first_to_last_ratio": ratio,
            # readable in `dvc metrics show`, which rounds to 5 decimals; None: underflow to 0
            "log10_first_to_last_ratio": round(float(np.log10(ratio)), 2) if ratio else None}


def verdict(ratio: float, timesteps: int) -> str:
    if ratio == 0:
        return f"gradient at distance {timesteps} underflows to 0 in float32: vanishes"
    word = ("vanishes" if ratio < VANISHED else "decays" if ratio < DECAYED
            else "does not vanish")
    return (f"gradient at distance {timesteps} is {ratio:.1e} of that at distance 1 "
            f"({-np.log10(ratio):.1f} orders of magnitude): {word}")


def initial_model(params: Params, architecture: str) -> keras.Model:
    """The weights training started from: the train stage seeds Keras, then builds."""
    keras.utils.set_random_seed(params.seed)
    model = build_model(architecture, params.prepare.vocab_size, params.prepare.maxlen,
                        **hyperparameters(params, architecture).hyperparameters)
    start_embedding(model, architecture, params)
    return model


def main(architecture: str) -> None:
    params = load_params()
    lesson = params.lessons
    model_path = MODELS_DIR / architecture / MODEL_FILE
    if not model_path.exists():
        raise UserError(f"{model_path} not found: run `dvc repro train@{architecture}`")
    x, y = long_reviews(*load_split("test"), lesson.gradient_timesteps, lesson.gradient_reviews,
                        params.seed, params.prepare)
    norms = {"init": gradient_norms(initial_model(params, architecture), x, y),
             "trained": gradient_norms(keras.models.load_model(model_path), x, y)}
    table = pd.DataFrame({"distance": np.arange(len(x[0]), 0, -1), **norms}).iloc[::-1]
    summary = {"reviews": len(x), "timesteps": int(x.shape[1]),
               **{state: decay_summary(norms[state]) for state in STATES}}
    with atomic_path(RESULTS_DIR / f"{architecture}.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    write_json(RESULTS_DIR / f"{architecture}.json", summary)
    log.info("%s on %d reviews: %s", architecture, len(x), summary)


def summary_markdown(results: dict[str, dict]) -> str:
    first = next(iter(results.values()))
    lines = [
        "# Lesson 2: vanishing gradients", "",
        f"Norm of d loss / d embedded word, averaged over {first['reviews']} test reviews of "
        f"at least {first['timesteps']} tokens (cut to their last {first['timesteps']}, so "
        "every step is a real word). Ratio: the norm at the first word over that at the "
        f"last word; below {VANISHED:g} the gradient is said to vanish, and 0 means it fell "
        "below what float32 can hold (about 1e-45).", "",
        "| architecture | ratio at init | ratio trained | at initialization | after training |",
        "|---|---:|---:|---|---|"]
    for arch, result in results.items():
        ratios = [result[s]["first_to_last_ratio"] for s in STATES]
        lines.append(f"| {arch} | {ratios[0]:.1e} | {ratios[1]:.1e} | "
                     + " | ".join(verdict(r, result["timesteps"]) for r in ratios) + " |")
    return "\n".join([*lines, ""])


def gradients_chart(tables: dict[str, pd.DataFrame], results: dict[str, dict], path: Path) -> None:
    fig, axes = plt.subplots(1, len(tables), figsize=(4.6 * len(tables), 4), squeeze=False,
                             sharey=True)
    for ax, (arch, table) in zip(axes[0], tables.items(), strict=True):
        for state, style in (("init", dict(color="grey", ls="--", label="at initialization")),
                             ("trained", dict(color="tab:blue", label="after training"))):
            norms = table[state].where(table[state] > 0)  # log scale: float32 underflow is a gap
            ax.semilogy(table.distance, norms, **style)
            if norms.isna().any():
                last = int(table.distance[norms.notna()].max())
                ax.annotate(f"0 in float32\nbeyond {last}", (last, norms.min()), fontsize=8,
                            color=style["color"], xytext=(4, 0), textcoords="offset points")
        ratios = [results[arch][state]["first_to_last_ratio"] for state in STATES]
        ax.set_title(f"{arch}\nfirst/last word: init {ratios[0]:.1e}, trained {ratios[1]:.1e}",
                     fontsize=10)
        ax.set_xlabel("distance from the end of the review (1 = last word)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("mean ||d loss / d embedding||")
    axes[0][0].legend(fontsize=8)
    first = next(iter(results.values()))
    fig.suptitle(f"Lesson 2: gradient reaching each word ({first['reviews']} test reviews)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main_summary() -> None:
    params = load_params()
    architectures = params.lessons.gradient_architectures
    missing = [a for a in architectures if not (RESULTS_DIR / f"{a}.json").exists()]
    if missing:
        raise UserError(f"no lesson 2 results for {', '.join(missing)}: "
                        "run `dvc repro gradients_summary`")
    results = {a: read_json(RESULTS_DIR / f"{a}.json") for a in architectures}
    tables = {a: pd.read_csv(RESULTS_DIR / f"{a}.csv") for a in architectures}
    wide = pd.concat([tables[a].set_index("distance").add_prefix(f"{a}_") for a in architectures],
                     axis=1).reset_index()
    outputs = [SUMMARY.with_suffix(s) for s in (".csv", ".md", ".png")]
    with atomic_path(outputs[0]) as csv, atomic_path(outputs[1]) as md, \
            atomic_path(outputs[2]) as png:
        wide.to_csv(csv, index=False, float_format="%.6g")
        md.write_text(summary_markdown(results), encoding="utf-8")
        gradients_chart(tables, results, png)
        tracking.log_lesson(
            "lesson_gradients",
            {"lessons.gradient_architectures": list(architectures),
             "lessons.gradient_reviews": params.lessons.gradient_reviews,
             "lessons.gradient_timesteps": params.lessons.gradient_timesteps},
            {f"{a}_{s}_first_to_last_ratio": results[a][s]["first_to_last_ratio"]
             for a in architectures for s in STATES},
            [csv, md, png], PREPARED_DIR)
    log.info("wrote %s", ", ".join(map(str, outputs)))


if __name__ == "__main__":
    architecture_stage_app(__doc__, main, main_summary)()
