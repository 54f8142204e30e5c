"""Compiling and fitting a model as the train stage does, shared by tune and the lessons, and
the hyperparameters a stage trains with (tuned ones where tuning ran)."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from pipeline import UserError
from pipeline.core.batching import make_dataset
from pipeline.core.config import ModelParams, Params, ParamsError, TrainParams
from pipeline.core.io import read_json
from pipeline.core.models import RECURRENT_CELLS, accepts_any_length
from pipeline.core.paths import PRETRAINED_DIR, TUNED_DIR

VECTORS_FILE, FOUND_FILE = "vectors.npy", "found.npy"  # in PRETRAINED_DIR

OPTIMIZERS = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
              "nadam": keras.optimizers.Nadam, "rmsprop": keras.optimizers.RMSprop,
              "sgd": keras.optimizers.SGD}


def use_xla(setting: str | bool, model: keras.Model) -> bool:
    """auto: XLA on CPU for models whose recurrent layers are Keras' own cells returning only
    their last output, with no convolution (the others it slowed down), never on a GPU (it
    would disable cuDNN). The measurements: docs/design.md."""
    if setting != "auto":
        return bool(setting)
    if tf.config.list_physical_devices("GPU"):
        return False
    recurrent = [layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
                 for layer in model.layers
                 if isinstance(layer, keras.layers.RNN | keras.layers.Bidirectional)]
    last_output_only = all(isinstance(layer, tuple(RECURRENT_CELLS.values()))
                           and not layer.return_sequences for layer in recurrent)
    convolution = any(isinstance(layer, keras.layers.Conv1D) for layer in model.layers)
    return bool(recurrent) and last_output_only and not convolution


def compile_model(model: keras.Model, learning_rate: float, train: TrainParams,
                  optimizer: str = "adam") -> keras.Model:
    model.compile(
        optimizer=OPTIMIZERS[optimizer](learning_rate, clipnorm=train.clipnorm),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        jit_compile=use_xla(train.jit_compile, model),
    )
    return model


def early_stopping(patience: int) -> keras.callbacks.EarlyStopping:
    """Stops after `patience` epochs without a lower val_loss; restores the best epoch's weights."""
    return keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                         restore_best_weights=True)


class CosineDecay(keras.callbacks.Callback):
    """The learning rate falls from the compiled one to 0 along a half cosine, step by step,
    over `total_steps` (all epochs)."""

    def __init__(self, total_steps: int):
        super().__init__()
        self.total_steps, self.step, self.initial = max(total_steps, 1), 0, None

    def on_train_begin(self, logs=None):
        self.initial = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_begin(self, batch, logs=None):
        progress = min(self.step, self.total_steps) / self.total_steps
        self.model.optimizer.learning_rate = self.initial * 0.5 * (1 + math.cos(math.pi * progress))
        self.step += 1

    def on_epoch_end(self, epoch, logs=None):  # into the history, as ReduceLROnPlateau does
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))


def schedule(train: TrainParams, steps_per_epoch: int) -> list[keras.callbacks.Callback]:
    """plateau: early stopping, and the learning rate cut by `reduce_lr_factor` after each epoch
    whose val_loss is no better (one noisy epoch then slows training instead of ending it).
    cosine: all max_epochs, the learning rate decayed to 0, the last epoch's weights kept."""
    if train.schedule == "cosine":
        return [CosineDecay(steps_per_epoch * train.max_epochs)]
    callbacks = [early_stopping(train.patience)]
    if train.reduce_lr_factor < 1:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=train.reduce_lr_factor, patience=0, verbose=0))
    return callbacks


def fit(model: keras.Model, data: dict, model_params: ModelParams, train: TrainParams,
        padding: str, seed: int, callbacks=()) -> tuple[pd.DataFrame, float]:
    """Train with `schedule`: early stopping on val_loss with the best weights restored, or all
    epochs under a cosine decay (train.schedule). Returns (history, seconds)."""
    bucket_width = train.bucket_width if accepts_any_length(model) else 0
    batch_size = model_params.batch_size
    train_ds = make_dataset(*data["train"], batch_size, bucket_width, padding, seed=seed)
    val_ds = make_dataset(*data["val"], batch_size, bucket_width, padding)
    callbacks = [*schedule(train, int(train_ds.cardinality())), *callbacks]
    # Repeated datasets with their steps given: Keras then keeps one iterator for the whole fit
    # instead of opening one per epoch; the batches are the same either way (each pass
    # reshuffles). Closing iterators stalled epoch starts until autotuning was turned off
    # (batching._prefetched); one iterator is still the less work.
    started = time.perf_counter()
    history = model.fit(train_ds.repeat(), steps_per_epoch=int(train_ds.cardinality()),
                        validation_data=val_ds.repeat(),
                        validation_steps=int(val_ds.cardinality()), epochs=train.max_epochs,
                        callbacks=list(callbacks), shuffle=False,
                        verbose=1 if sys.stdout.isatty() else 2)
    seconds = time.perf_counter() - started
    table = pd.DataFrame(history.history)
    table.insert(0, "epoch", range(1, len(table) + 1))
    return table, seconds


def best_epoch(history: pd.DataFrame, train: TrainParams) -> pd.Series:
    """The epoch whose weights training keeps: under early stopping the lowest val_loss (the
    first of equals), under the cosine schedule the last."""
    if train.schedule == "cosine":
        return history.iloc[-1]
    return history.loc[history.val_loss.idxmin()]


def summarize(history: pd.DataFrame, model: keras.Model, train: TrainParams) -> dict:
    """What the training scored: the same for the same params on any machine."""
    best = best_epoch(history, train)
    return {
        "epochs": len(history),
        "best_epoch": int(best.epoch),
        "best_val_loss": round(float(best.val_loss), 4),
        "best_val_accuracy": round(float(best.val_accuracy), 4),
        "parameters": int(model.count_params()),
    }


def training_timings(history: pd.DataFrame, seconds: float, train_size: int) -> dict:
    """What the machine measured: kept apart from summarize() in timings/train/<arch>.json."""
    return {
        "train_seconds": round(seconds, 1),
        "train_samples_per_second": round(train_size * len(history) / seconds, 1),
    }


def final_model_params(params: Params, architecture: str, tuned_dir: Path = TUNED_DIR
                       ) -> tuple[ModelParams, bool]:
    """models.<arch> with the tune stage's best values on top; (params, whether tuned).

    Without tuned/<arch>.json (tuning never ran) the params.yaml defaults are used as they are.
    """
    defaults = params.model(architecture)
    path = tuned_dir / f"{architecture}.json"
    if not path.exists():
        return defaults, False
    try:
        tuned = read_json(path)
        return defaults.with_values(tuned["hyperparameters"]), bool(tuned["tuned"])
    except (ValueError, KeyError, TypeError, ParamsError) as err:
        raise UserError(f"{path} is not a valid tuning result ({err}); rerun "
                        f"`dvc repro tune@{architecture}` or delete it") from None


def flat_params(params: Params, architecture: str, model_params: ModelParams | None = None
                ) -> dict:
    model_params = model_params or params.model(architecture)
    return {
        "seed": params.seed,
        "architecture": architecture,
        **model_params.as_dict(),
        **{f"prepare.{k}": v for k, v in vars(params.prepare).items()},
        **{f"train.{k}": v for k, v in vars(params.train).items()},
    }


def hyperparameters(params: Params, architecture: str) -> ModelParams:
    """The hyperparameters the train stage uses for `architecture`: tuned ones where tuning ran."""
    return final_model_params(params, architecture)[0]


def start_embedding(model: keras.Model, architecture: str, params: Params,
                    directory: Path = PRETRAINED_DIR) -> bool:
    """For an architecture in pretrain.architectures: its embedding starts from the pretrain
    stage's word vectors (rescaled to the initializer's spread) where word2vec learned the
    word, from its seeded random start elsewhere. Returns whether it did."""
    if architecture not in params.pretrain.architectures:
        return False
    if not (directory / VECTORS_FILE).exists():
        raise UserError(f"{directory / VECTORS_FILE} not found: run `dvc repro pretrain`")
    vectors, found = np.load(directory / VECTORS_FILE), np.load(directory / FOUND_FILE)
    layer = model.get_layer("embedding")
    (start,) = layer.get_weights()
    if vectors.shape != start.shape:
        raise UserError(f"{directory / VECTORS_FILE} holds {vectors.shape} vectors, but "
                        f"{architecture}'s embedding is {start.shape}: run `dvc repro pretrain`")
    scale = start.std() / max(float(vectors[found].std()), 1e-12)
    layer.set_weights([np.where(found[:, None], vectors * scale, start).astype(start.dtype)])
    return True
