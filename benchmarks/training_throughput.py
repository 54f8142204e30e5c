"""Training throughput and test accuracy: the course-notebook way against the pipeline's path.

    python benchmarks/training_throughput.py            # after `dvc repro prepare`, from the root

Per architecture, with the same seed, hyperparameters and number of epochs, each path keeping
the weights of its best epoch by validation loss, as the pipeline's training does (SimpleRNN's
validation accuracy moved by up to 16 points from one epoch to the next):
  notebook: full-length padded NumPy arrays into `model.fit`, Keras' default compile
            (no XLA on CPU), `model.evaluate` on the padded test set;
  pipeline: pipeline.train.compile_model (XLA per model and device) and pipeline.train.fit
            (length-bucketed tf.data with prefetch), scored with batching.predict_proba.
Throughput is training samples/s with validation excluded: over all epochs (epoch 1 includes
tracing and XLA compilation) and in steady state (epochs 2+), with the CPU cores each path kept
busy. Prints the table and the ratios and writes benchmarks/results/training_throughput.{csv,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.core.batching import predict_proba  # noqa: E402
from pipeline.core.config import ModelParams, Params, load_params  # noqa: E402
from pipeline.core.data import SPLITS, load_split
from pipeline.core.io import atomic_path  # noqa: E402
from pipeline.core.models import accepts_any_length, build_model  # noqa: E402
from pipeline.core.paths import PREPARED_DIR  # noqa: E402
from pipeline.core.training import compile_model, early_stopping, fit  # noqa: E402

OUT = Path("benchmarks/results/training_throughput")


def model_settings(params: Params, architecture: str) -> ModelParams:
    """The one place this benchmark looks up an architecture's hyperparameters."""
    return params.model(architecture)


class TrainingTimer(keras.callbacks.Callback):
    """Wall and CPU seconds spent training in each epoch, the validation pass excluded.

    CPU seconds (all threads of the process) over wall seconds is how many cores the training
    kept busy: on this 2-core machine, the measure of what a path leaves idle. `start_waits`:
    seconds from each epoch's start to its first batch, where Keras opens the epoch's
    iterator (and closes the last one, which with tf.data autotuning can stall for seconds).
    """

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self.start_waits: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started, self._stopped = (time.perf_counter(), time.process_time()), None
        self._first_batch = True

    def on_train_batch_begin(self, batch, logs=None):
        if self._first_batch:
            self.start_waits.append(time.perf_counter() - self._started[0])
            self._first_batch = False

    def on_test_begin(self, logs=None):
        if self._stopped is None:
            self._stopped = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        stopped = self._stopped or (time.perf_counter(), time.process_time())
        self.seconds.append(stopped[0] - self._started[0])
        self.cpu_seconds.append(stopped[1] - self._started[1])

    def cores_used(self) -> float:
        return sum(self.cpu_seconds) / sum(self.seconds)


def throughput(samples: int, seconds: list[float]) -> tuple[float, float]:
    """(samples/s over all epochs, samples/s over epochs 2+ or NaN after a single epoch)."""
    overall = samples * len(seconds) / sum(seconds)
    steady = samples * (len(seconds) - 1) / sum(seconds[1:]) if len(seconds) > 1 else np.nan
    return overall, steady


def subsample(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    if fraction >= 1:
        return x, y
    count = max(1, round(fraction * len(y)))
    rows = np.sort(np.random.default_rng(seed).permutation(len(y))[:count])
    return x[rows], y[rows]


def notebook_way(architecture: str, params: Params, data: dict, epochs: int) -> dict:
    settings = model_settings(params, architecture)
    keras.utils.set_random_seed(params.seed)
    model = build_model(architecture, params.prepare.vocab_size, params.prepare.maxlen,
                        **settings.hyperparameters)
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate),
                  loss="binary_crossentropy", metrics=["accuracy"])
    timer = TrainingTimer()
    history = model.fit(*data["train"], batch_size=settings.batch_size, epochs=epochs,
                        validation_data=data["val"],
                        callbacks=[timer, early_stopping(patience=epochs)], verbose=2)
    _, accuracy = model.evaluate(*data["test"], batch_size=params.evaluate.batch_size, verbose=0)
    return {"seconds": timer.seconds, "cores_used": timer.cores_used(),
            "start_waits": timer.start_waits, "test_accuracy": float(accuracy),
            "xla": bool(model.jit_compile),
            "best_epoch": int(np.argmin(history.history["val_loss"])) + 1}


def pipeline_way(architecture: str, params: Params, data: dict, epochs: int) -> dict:
    settings = model_settings(params, architecture)
    keras.utils.set_random_seed(params.seed)
    model = build_model(architecture, params.prepare.vocab_size, params.prepare.maxlen,
                        **settings.hyperparameters)
    compile_model(model, settings.learning_rate, params.train)
    timer = TrainingTimer()
    # patience = epochs on both paths: neither stops early, both keep their best epoch's weights
    train = dataclasses.replace(params.train, max_epochs=epochs, patience=epochs)
    history, _ = fit(model, data, settings, train, params.prepare.padding, params.seed,
                     callbacks=[timer])
    bucket_width = params.train.bucket_width if accepts_any_length(model) else 0
    x_test, y_test = data["test"]
    probability = predict_proba(model, x_test, params.evaluate.batch_size, bucket_width,
                                params.prepare.padding)
    # the same rule as the notebook's `accuracy` metric, so the two columns compare
    accuracy = float(np.mean((probability > 0.5) == (y_test > 0.5)))
    return {"seconds": timer.seconds, "cores_used": timer.cores_used(),
            "start_waits": timer.start_waits, "test_accuracy": accuracy,
            "xla": bool(model.jit_compile), "bucket_width": bucket_width,
            "best_epoch": int(history.val_loss.idxmin()) + 1}


def epoch_list(seconds: list[float]) -> str:
    return " ".join(f"{s:.2f}" for s in seconds)


def compare(architecture: str, params: Params, data: dict, epochs: int) -> dict:
    samples = len(data["train"][1])
    notebook = notebook_way(architecture, params, data, epochs)
    pipeline = pipeline_way(architecture, params, data, epochs)
    nb_overall, nb_steady = throughput(samples, notebook["seconds"])
    pl_overall, pl_steady = throughput(samples, pipeline["seconds"])
    return {
        "architecture": architecture,
        "seed": params.seed,
        "epochs": epochs,
        "train_samples": samples,
        "test_samples": len(data["test"][1]),
        "notebook_samples_per_s": round(nb_overall, 1),
        "pipeline_samples_per_s": round(pl_overall, 1),
        "speedup": round(pl_overall / nb_overall, 2),
        "notebook_steady_samples_per_s": round(nb_steady, 1),
        "pipeline_steady_samples_per_s": round(pl_steady, 1),
        "steady_speedup": round(pl_steady / nb_steady, 2),
        "notebook_test_accuracy": round(notebook["test_accuracy"], 4),
        "pipeline_test_accuracy": round(pipeline["test_accuracy"], 4),
        "accuracy_delta": round(pipeline["test_accuracy"] - notebook["test_accuracy"], 4),
        "notebook_best_epoch": notebook["best_epoch"],
        "pipeline_best_epoch": pipeline["best_epoch"],
        "notebook_epoch_seconds": epoch_list(notebook["seconds"]),
        "pipeline_epoch_seconds": epoch_list(pipeline["seconds"]),
        "notebook_start_wait_s": round(sum(notebook["start_waits"]), 1),
        "pipeline_start_wait_s": round(sum(pipeline["start_waits"]), 1),
        "notebook_cores_used": round(notebook["cores_used"], 2),
        "pipeline_cores_used": round(pipeline["cores_used"], 2),
        "notebook_xla": notebook["xla"],
        "pipeline_xla": pipeline["xla"],
        "bucket_width": pipeline["bucket_width"],
    }


def summary(table: pd.DataFrame) -> list[str]:
    """One line per architecture: mean speedups and accuracy delta, with the delta's spread."""
    lines = []
    for architecture, rows in table.groupby("architecture", sort=False):
        steady = rows.steady_speedup.mean()
        steady = "" if pd.isna(steady) else f" (steady state {steady:.2f}x)"
        delta = f"test accuracy {rows.accuracy_delta.mean() * 100:+.2f} points"
        if len(rows) > 1:
            delta += (f" (mean of {len(rows)} seeds, sd {rows.accuracy_delta.std() * 100:.2f}; "
                      f"notebook {rows.notebook_test_accuracy.mean():.4f}, "
                      f"pipeline {rows.pipeline_test_accuracy.mean():.4f})")
        lines.append(f"{architecture}: pipeline {rows.speedup.mean():.2f}x the notebook's "
                     f"samples/s{steady}, {delta}")
    return lines


def machine() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    return (f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
            f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''}, TensorFlow {tf.__version__}, "
            f"Keras {keras.__version__}")


def write_results(out: Path, table: pd.DataFrame, title: str) -> None:
    """OUT.csv and OUT.md: the title, the command that ran and the machine, then the table;
    each file written whole or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out.with_suffix(".csv")) as tmp:
        table.to_csv(tmp, index=False)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    header = [f"# {title}", "", f"`{command}` on {machine()}"]
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(markdown(table, header), encoding="utf-8")


def markdown(table: pd.DataFrame, header: list[str]) -> str:
    columns = list(table.columns)
    lines = [*header, "", "| " + " | ".join(columns) + " |",
             "|" + "|".join("---" if c == "architecture" else "---:" for c in columns) + "|"]
    lines += ["| " + " | ".join("-" if pd.isna(v) else str(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--architectures", nargs="+", help="default: all in --params")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=1,
                        help="repeat each architecture with seeds seed, seed+1, ... (params' seed)")
    parser.add_argument("--train-fraction", type=fraction, default=1.0,
                        help="share of the training and validation reviews to use")
    parser.add_argument("--test-fraction", type=fraction, default=1.0)
    parser.add_argument("--prepared-dir", type=Path, default=PREPARED_DIR)
    parser.add_argument("--out", type=Path, default=OUT, help="writes OUT.csv and OUT.md")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.seeds < 1:
        parser.error("--epochs and --seeds must be >= 1")

    params = load_params(args.params)
    architectures = args.architectures or list(params.architectures)
    unknown = [a for a in architectures if a not in params.models]
    if unknown:
        parser.error(f"{', '.join(unknown)} not in {args.params}; "
                     f"choose from {', '.join(params.architectures)}")
    missing = [s for s in SPLITS if not (args.prepared_dir / f"{s}.npz").exists()]
    if missing:
        parser.error(f"{args.prepared_dir} has no {', '.join(missing)}.npz: "
                     "run `dvc repro prepare` first, or pass --prepared-dir")

    data = {}
    for split in SPLITS:
        x, y = load_split(split, args.prepared_dir)
        share = args.test_fraction if split == "test" else args.train_fraction
        data[split] = subsample(x, y.astype("float32"), share, params.seed)

    rows = [compare(a, dataclasses.replace(params, seed=params.seed + i), data, args.epochs)
            for a in architectures for i in range(args.seeds)]
    table = pd.DataFrame(rows)
    command = shlex.join(["python", "benchmarks/training_throughput.py",
                          *(sys.argv[1:] if argv is None else argv)])
    header = [f"Training throughput, notebook way vs pipeline ({args.params}, "
              f"{args.prepared_dir})", "",
              f"- machine: {machine()}",
              f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
              f"- command: `{command}`",
              "- samples/s: training only (validation excluded); steady: epochs 2+",
              "- epoch_seconds: training seconds of each epoch; start_wait_s: of those, seconds "
              "from the epochs' starts to their first batches (iterator set-up)",
              "- cores_used: CPU seconds of all threads over wall seconds while training",
              "- test accuracy: with the weights of each path's best epoch by val_loss"]
    csv_path, md_path = args.out.with_suffix(".csv"), args.out.with_suffix(".md")
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    report = markdown(table, header) + "\n" + "\n".join(f"- {line}" for line in summary(table))
    with atomic_path(md_path) as tmp:
        tmp.write_text(report + "\n", encoding="utf-8")

    print(report)
    print(f"wrote {csv_path} and {md_path}")


if __name__ == "__main__":
    main()
