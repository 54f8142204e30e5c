from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import UserError
from pipeline.core.config import ParamsError, PrepareParams, parse_params, read_params
from pipeline.core.data import cut
from pipeline.core.models import build_model
from pipeline.gradients import (
    after_embedding,
    decay_summary,
    gradient_norms,
    gradients_chart,
    long_reviews,
    summary_markdown,
    verdict,
)
from pipeline.prepare import pad
from pipeline.sequence_length import accuracy_chart, summary_table, to_markdown, train_and_score

ROOT = Path(__file__).resolve().parents[2]


def small_raw() -> dict:
    return read_params(ROOT / "params.small.yaml")


def random_sequences(n, seed, low=1, high=40):
    rng = np.random.default_rng(seed)
    return [rng.integers(2, 50, size=rng.integers(low, high)) for _ in range(n)]


@pytest.mark.parametrize("side", ["pre", "post"])
def test_cutting_the_prepared_sequences_equals_padding_at_the_shorter_maxlen(side):
    sequences = random_sequences(200, 0)
    prepared = pad(sequences, 30, side, side)
    prepare = PrepareParams(0.2, 50, 30, side, side)
    for maxlen in (1, 7, 20, 30):
        np.testing.assert_array_equal(cut(prepared, maxlen, prepare),
                                      pad(sequences, maxlen, side, side))


def test_cutting_refuses_mixed_padding_and_too_long_maxlens():
    prepared = pad(random_sequences(5, 0), 30)
    with pytest.raises(UserError, match="prepare.padding"):
        cut(prepared, 10, PrepareParams(0.2, 50, 30, "pre", "post"))
    with pytest.raises(UserError, match="lessons.maxlens"):
        cut(prepared, 31, PrepareParams(0.2, 50, 30))


def test_lesson_params_cannot_ask_for_more_tokens_than_prepared():
    raw = small_raw()
    raw["lessons"]["maxlens"] = [20, 101]
    with pytest.raises(ParamsError, match=r"lessons\.maxlens.*prepare\.maxlen \(100\)"):
        parse_params(raw)
    for key in ("sequence_architectures", "gradient_architectures"):
        raw = small_raw()
        raw["lessons"][key] = ["transformer"]
        with pytest.raises(ParamsError, match=rf"lessons\.{key}.*'transformer'"):
            parse_params(raw)


def early_keyword_data(n, seed):
    """16 tokens; label 1 when token 3 is among the first 8: invisible to the last 8 alone."""
    rng = np.random.default_rng(seed)
    x = rng.integers(4, 20, size=(n, 16)).astype("int32")
    y = np.arange(n) % 2
    x[y == 1, rng.integers(0, 8, size=(y == 1).sum())] = 3
    return x, y.astype("int8")


def test_a_length_that_cuts_off_the_signal_scores_at_chance():
    raw = small_raw()
    raw["prepare"].update(vocab_size=20, maxlen=16)
    raw["lessons"].update(maxlens=[8, 16], max_epochs=30, gradient_timesteps=16)
    raw["train"].update(patience=5, bucket_width=0, jit_compile=False)
    raw["models"]["dense"].update(learning_rate=0.01, dropout=0.0)
    params = parse_params(raw)
    data = {"train": early_keyword_data(512, 0), "val": early_keyword_data(128, 1),
            "test": early_keyword_data(256, 2)}
    short, short_timings = train_and_score("dense", 8, data, params)
    full, _ = train_and_score("dense", 16, data, params)
    assert "train_seconds" not in short and short_timings["train_seconds"] >= 0
    assert full["accuracy"] >= 0.9
    assert short["accuracy"] <= 0.65
    assert 1 <= short["best_epoch"] <= short["epochs"] <= 30


def lesson1_results():
    return {
        "gru": {"maxlen_100": {"accuracy": 0.84, "roc_auc": 0.9, "epochs": 3, "best_epoch": 2},
                "maxlen_500": {"accuracy": 0.88, "roc_auc": 0.95, "epochs": 4, "best_epoch": 2}},
        "dense": {"maxlen_100": {"accuracy": 0.83, "roc_auc": 0.9, "epochs": 3, "best_epoch": 3},
                  "maxlen_500": {"accuracy": 0.82, "roc_auc": 0.9, "epochs": 5, "best_epoch": 3}},
    }


def test_lesson1_table_and_chart_from_per_architecture_results(tmp_path):
    table = summary_table(lesson1_results(), reused_maxlen=500)
    assert len(table) == 4 and "train_seconds" not in table.columns
    assert table.set_index(["architecture", "maxlen"]).loc[("gru", 500), "source"] == "train stage"
    assert table.set_index(["architecture", "maxlen"]).loc[("dense", 100), "source"] \
        == "this lesson"
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = parse_params(raw)
    text = to_markdown(table, params)
    assert "| gru | 0.8400 | 0.8800 | +0.0400 | 2 | 2 |" in text
    assert "| dense | 0.8300 | 0.8200 | -0.0100 | 3 | 3 |" in text
    assert text.index("| gru |") < text.index("| dense |")  # best at the longest length first
    assert f"train.max_epochs = {params.train.max_epochs} epochs" in text
    assert f"lessons.max_epochs = {params.lessons.max_epochs} epochs" in text
    assert "early stopping" in text if params.train.schedule == "plateau" else "schedule" in text
    accuracy_chart(table, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


def tiny_simple_rnn(recurrent_scale):
    keras.utils.set_random_seed(0)
    model = build_model("simple_rnn", 30, 40, embedding_dim=4, units=8, dropout=0.0)
    rnn = model.layers[2]
    kernel, recurrent, bias = rnn.get_weights()
    rnn.set_weights([kernel, recurrent_scale * recurrent, bias])
    return model


def test_gradient_norms_per_timestep_decay_with_small_recurrent_weights():
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, 30, size=(16, 40)).astype("int32")
    labels = rng.integers(0, 2, size=16)
    weak = gradient_norms(tiny_simple_rnn(0.5), tokens, labels)
    assert weak.shape == (40,) and (weak > 0).all()
    assert weak[0] < 1e-6 * weak[-1]  # the first word gets almost nothing
    assert (np.diff(np.log(weak)) > 0).mean() > 0.9  # rising towards the last word
    strong = gradient_norms(tiny_simple_rnn(1.0), tokens, labels)
    assert strong[0] / strong[-1] > 1e3 * weak[0] / weak[-1]


@pytest.mark.parametrize("architecture", ["gru", "lstm", "attention_rnn"])
def test_running_the_layers_after_the_embedding_reproduces_the_model(architecture):
    keras.utils.set_random_seed(0)
    model = build_model(architecture, 50, 20, embedding_dim=4, units=4)
    tokens = pad(random_sequences(8, 1, high=20), 20)  # padded: the mask matters
    embedding = model.get_layer("embedding")
    ours = after_embedding(model, embedding(tokens), embedding.compute_mask(tokens))
    np.testing.assert_allclose(np.asarray(ours), model.predict(tokens, verbose=0), atol=1e-5)


def test_long_reviews_keeps_only_reviews_filling_the_window():
    sequences = random_sequences(100, 2, low=5, high=40)
    x, y = pad(sequences, 40), np.arange(100) % 2
    prepare = PrepareParams(0.2, 50, 40)
    chosen, labels = long_reviews(x, y, 25, 10, 0, prepare)
    long_enough = sum(len(s) >= 25 for s in sequences)
    assert chosen.shape == (min(10, long_enough), 25) and (chosen != 0).all()
    assert len(labels) == len(chosen)
    everything, _ = long_reviews(x, y, 25, 1000, 0, prepare)
    assert len(everything) == long_enough
    with pytest.raises(UserError, match="lessons.gradient_timesteps"):
        long_reviews(pad(random_sequences(5, 0, high=10), 40), y[:5], 30, 10, 0, prepare)


def test_verdict_is_read_from_the_ratio():
    assert verdict(3e-8, 500).endswith("vanishes") and "distance 500 is 3.0e-08" in verdict(
        3e-8, 500)
    assert "(7.5 orders of magnitude)" in verdict(3e-8, 500)
    assert verdict(9e-3, 500).endswith(": decays")
    assert verdict(0.2, 500).endswith(": decays")
    assert verdict(1.5, 500).endswith("does not vanish")
    assert "underflows to 0" in verdict(0.0, 500)


def test_decay_summary_compares_the_first_word_with_the_last():
    summary = decay_summary(np.array([2e-7, 0.5, 2.0]))
    assert summary["first_to_last_ratio"] == pytest.approx(1e-7)
    assert summary["log10_first_to_last_ratio"] == -7.0
    assert decay_summary(np.array([0.0, 1.0]))["log10_first_to_last_ratio"] is None


def test_lesson2_summary_and_chart(tmp_path):
    distance = np.arange(1, 11)
    tables = {arch: pd.DataFrame({"distance": distance, "init": 0.1 ** distance,
                                  "trained": scale / distance})
              for arch, scale in (("simple_rnn", 1.0), ("gru", 2.0))}
    results = {arch: {"reviews": 7, "timesteps": 10,
                      **{state: {"first_to_last_ratio": float(t[state].iloc[-1] / t[state].iloc[0])}
                         for state in ("init", "trained")}}
               for arch, t in tables.items()}
    text = summary_markdown(results)
    assert "7 test reviews" in text
    assert "| simple_rnn | 1.0e-09 | 1.0e-01 |" in text and "vanishes" in text
    assert "decays" in text
    gradients_chart(tables, results, tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 5000
