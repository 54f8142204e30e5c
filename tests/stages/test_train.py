import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest
import tensorflow as tf
from helpers import keyword_data

from pipeline.core.config import ModelParams, TrainParams
from pipeline.core.models import ARCHITECTURES, build_model
from pipeline.core.training import (
    CosineDecay,
    compile_model,
    fit,
    schedule,
    summarize,
    training_timings,
    use_xla,
)


@pytest.mark.parametrize("architecture", ["gru", "conv1d"])
def test_fit_learns_a_keyword_task_and_reports_a_history(architecture):
    keras.utils.set_random_seed(0)
    data = {"train": keyword_data(256, 0), "val": keyword_data(64, 1)}
    model_params = ModelParams(architecture, 0.01, 32, {"embedding_dim": 8, "units": 8})
    if architecture == "conv1d":
        model_params.hyperparameters.update(filters=8, kernel_size=2, dropout=0.0)
    train = TrainParams(max_epochs=15, patience=3, clipnorm=1.0, bucket_width=4,
                        jit_compile=False)
    model = build_model(architecture, 20, 16, **model_params.hyperparameters)
    compile_model(model, model_params.learning_rate, train)
    history, seconds = fit(model, data, model_params, train, "pre", seed=0)
    assert list(history.columns[:1]) == ["epoch"]
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(history.columns)
    assert history.val_accuracy.max() >= 0.9
    summary = summarize(history, model, train)
    assert summary["epochs"] == len(history)
    assert summary["best_val_loss"] == round(history.val_loss.min(), 4)
    assert not {"train_seconds", "train_samples_per_second"} & set(summary)  # timings/, apart
    timings = training_timings(history, seconds, 256)
    assert timings["train_seconds"] == round(seconds, 1)
    assert timings["train_samples_per_second"] > 0


def test_early_stopping_restores_the_best_epoch_weights():
    keras.utils.set_random_seed(0)
    data = {"train": keyword_data(128, 0), "val": keyword_data(64, 1)}
    model_params = ModelParams("gru", 0.05, 32, {"embedding_dim": 8, "units": 8})
    train = TrainParams(max_epochs=12, patience=2, bucket_width=0, jit_compile=False)
    model = compile_model(build_model("gru", 20, 16, **model_params.hyperparameters),
                          model_params.learning_rate, train)
    history, _ = fit(model, data, model_params, train, "pre", seed=0)
    restored = model.evaluate(data["val"][0], data["val"][1].astype("float32"), verbose=0)[0]
    assert restored == pytest.approx(history.val_loss.min(), rel=1e-3)


def test_the_cosine_schedule_runs_every_epoch_decays_to_zero_and_keeps_the_last():
    keras.utils.set_random_seed(0)
    data = {"train": keyword_data(128, 0), "val": keyword_data(64, 1)}
    model_params = ModelParams("gru", 0.05, 32, {"embedding_dim": 8, "units": 8})
    train = TrainParams(max_epochs=4, patience=0, bucket_width=0, jit_compile=False,
                        schedule="cosine")
    callbacks = schedule(train, steps_per_epoch=4)
    assert [type(c) for c in callbacks] == [CosineDecay]  # no early stopping, no plateau cuts
    model = compile_model(build_model("gru", 20, 16, **model_params.hyperparameters),
                          model_params.learning_rate, train)
    history, _ = fit(model, data, model_params, train, "pre", seed=0)
    assert len(history) == 4
    rates = history.learning_rate.tolist()  # as of each epoch's end
    assert rates == sorted(rates, reverse=True) and rates[0] < 0.05
    assert float(model.optimizer.learning_rate) < 0.05 * 0.01  # the last step's: almost 0
    kept = model.evaluate(data["val"][0], data["val"][1].astype("float32"), verbose=0)[0]
    assert kept == pytest.approx(history.val_loss.iloc[-1], rel=1e-3)
    assert summarize(history, model, train)["best_epoch"] == 4


def test_xla_is_chosen_per_device_and_model():
    gru, dense = build_model("gru", 20, 16), build_model("dense", 20, 16)
    assert use_xla(True, dense) is True and use_xla(False, gru) is False
    on_cpu = not tf.config.list_physical_devices("GPU")
    chosen = {name for name in ARCHITECTURES if use_xla("auto", build_model(name, 20, 16))}
    # XLA sped these up on CPU and slowed every other architecture down (see use_xla)
    assert chosen == ({"simple_rnn", "lstm", "gru", "bidirectional_rnn"} if on_cpu else set())


def test_auto_leaves_xla_off_on_a_gpu_so_keras_can_pick_cudnn(monkeypatch):
    fake_gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [fake_gpu] if kind in (None, "GPU") else [])
    assert not any(use_xla("auto", build_model(name, 20, 16)) for name in ARCHITECTURES)
    assert use_xla(True, build_model("gru", 20, 16)) is True  # an explicit setting still wins


def test_compile_model_builds_every_optimizer_params_yaml_accepts():
    from pipeline.core.config import OPTIMIZERS
    from pipeline.core.training import OPTIMIZERS as BUILDERS

    assert set(BUILDERS) == set(OPTIMIZERS)
    train = TrainParams(max_epochs=1, patience=1, jit_compile=False)
    model = compile_model(build_model("dense", 20, 16), 0.01, train, "rmsprop")
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)


def test_train_uses_the_tuned_values_over_the_defaults(tmp_path):
    from pipeline import UserError
    from pipeline.core.config import load_params
    from pipeline.core.io import write_json
    from pipeline.core.training import final_model_params

    params = load_params(Path(__file__).resolve().parents[2] / "params.small.yaml")
    assert final_model_params(params, "gru", tmp_path) == (params.model("gru"), False)
    write_json(tmp_path / "gru.json", {"tuned": True, "hyperparameters": {
        **params.model("gru").as_dict(), "units": 7, "learning_rate": 0.004}})
    model_params, tuned = final_model_params(params, "gru", tmp_path)
    assert tuned and model_params.hyperparameters["units"] == 7
    assert model_params.learning_rate == 0.004
    (tmp_path / "gru.json").write_text("{not json")
    with pytest.raises(UserError, match=r"gru\.json is not a valid tuning result"):
        final_model_params(params, "gru", tmp_path)


@pytest.mark.parametrize("user_flags, expected", [
    (None, "--xla_cpu_experimental_ynn_fusion_type="),
    ("--xla_cpu_enable_fast_math=false",
     "--xla_cpu_enable_fast_math=false --xla_cpu_experimental_ynn_fusion_type="),
    ("--xla_cpu_experimental_ynn_fusion_type=individual_dot",
     "--xla_cpu_experimental_ynn_fusion_type=individual_dot"),
])
def test_importing_the_pipeline_turns_xla_ynnpack_off_unless_the_user_chose(user_flags, expected):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if user_flags is not None:
        env["XLA_FLAGS"] = user_flags
    script = "import os, pipeline; print(os.environ['XLA_FLAGS'])"
    flags = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert flags == expected
