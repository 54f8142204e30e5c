"""benchmarks/training_throughput.py and seed_spread.py on a tiny prepared dataset written by the
test."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pandas as pd
import pytest
from helpers import PROJECT_ROOT

from pipeline.core.config import load_params
from pipeline.prepare import pad

SCRIPT = PROJECT_ROOT / "benchmarks" / "training_throughput.py"


def load_script(script=SCRIPT):
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_prepared(directory, maxlen=100):
    """train/val/test.npz like `prepare` writes: label 1 when token 3 appears."""
    directory.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 96), ("val", 32), ("test", 64)):
        sequences = [rng.integers(4, 50, size=rng.integers(5, maxlen)) for _ in range(n)]
        labels = np.arange(n) % 2
        for seq, label in zip(sequences, labels, strict=True):
            if label:
                seq[rng.integers(len(seq))] = 3
        np.savez(directory / f"{split}.npz", x=pad(sequences, maxlen), y=labels.astype("int8"),
                 id=np.arange(n))


@pytest.mark.slow  # trains 2 architectures x 2 seeds x 2 paths
def test_writes_one_row_per_architecture_with_consistent_ratios(tmp_path, capsys):
    write_prepared(tmp_path / "prepared")
    out = tmp_path / "results" / "throughput"
    load_script().main(["--params", str(PROJECT_ROOT / "params.small.yaml"),
                        "--architectures", "gru", "dense", "--epochs", "2", "--seeds", "2",
                        "--test-fraction", "0.5", "--prepared-dir", str(tmp_path / "prepared"),
                        "--out", str(out)])
    table = pd.read_csv(out.with_suffix(".csv"))
    assert list(table.architecture) == ["gru", "gru", "dense", "dense"]
    seed = load_params(PROJECT_ROOT / "params.small.yaml").seed
    assert list(table.seed) == [seed, seed + 1] * 2
    assert {"epochs", "notebook_samples_per_s", "pipeline_samples_per_s", "speedup",
            "notebook_test_accuracy", "pipeline_test_accuracy", "accuracy_delta",
            "pipeline_xla", "bucket_width"} <= set(table.columns)
    assert (table.epochs == 2).all() and (table.test_samples == 32).all()
    best = table[["notebook_best_epoch", "pipeline_best_epoch"]].to_numpy()
    assert ((best >= 1) & (best <= 2)).all()
    ratio = table.pipeline_samples_per_s / table.notebook_samples_per_s
    assert table.speedup.to_numpy() == pytest.approx(ratio.to_numpy(), rel=0.02)
    steady = table.pipeline_steady_samples_per_s / table.notebook_steady_samples_per_s
    assert table.steady_speedup.to_numpy() == pytest.approx(steady.to_numpy(), rel=0.02)
    delta = table.pipeline_test_accuracy - table.notebook_test_accuracy
    assert table.accuracy_delta.to_numpy() == pytest.approx(delta.to_numpy(), abs=2e-4)
    widths = {arch: set(rows.bucket_width) for arch, rows in table.groupby("architecture")}
    assert widths == {"gru": {25}, "dense": {0}}
    for path in ("notebook", "pipeline"):
        epochs = [[float(s) for s in cell.split()] for cell in table[f"{path}_epoch_seconds"]]
        assert all(len(seconds) == 2 for seconds in epochs)
        from_rate = 2 * table.train_samples / table[f"{path}_samples_per_s"]
        assert [sum(seconds) for seconds in epochs] == pytest.approx(from_rate, abs=0.02)
        waits = table[f"{path}_start_wait_s"].to_numpy()
        assert ((waits >= 0) & (waits <= [sum(seconds) + 0.05 for seconds in epochs])).all()
    cores = table[["notebook_cores_used", "pipeline_cores_used"]].to_numpy()
    assert ((cores > 0) & (cores <= (os.cpu_count() or 1) + 0.5)).all()
    markdown = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "- command: `python benchmarks/training_throughput.py --params" in markdown
    assert f"| gru | {seed} | 2 |" in markdown and f"| gru | {seed + 1} | 2 |" in markdown
    printed = capsys.readouterr().out
    assert "gru: pipeline" in printed and "(mean of 2 seeds, sd " in printed
    assert "- dense: pipeline" in markdown


def test_a_missing_prepared_dataset_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_script().main(["--params", str(PROJECT_ROOT / "params.small.yaml"),
                            "--prepared-dir", str(tmp_path / "nowhere")])
    assert "run `dvc repro prepare` first" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow  # trains 2 architectures x 2 seeds, then one of them again
def test_seed_spread_is_max_minus_min_and_the_same_seed_gives_none(tmp_path, capsys):
    write_prepared(tmp_path / "prepared")
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "dense.json").write_text('{"accuracy_ci_low": 0.5, '
                                                  '"accuracy_ci_high": 0.6}')
    seed_spread = load_script(PROJECT_ROOT / "benchmarks" / "seed_spread.py")
    common = ["--params", str(PROJECT_ROOT / "params.small.yaml"),
              "--prepared-dir", str(tmp_path / "prepared"), "--tuned-dir", str(tmp_path / "tuned"),
              "--eval-dir", str(tmp_path / "eval")]
    out = tmp_path / "results" / "spread"
    seed_spread.main([*common, "--architectures", "dense", "conv1d", "--seeds", "42", "43",
                      "--out", str(out)])
    table = pd.read_csv(out.with_suffix(".csv"))
    assert list(table.architecture) == ["dense", "conv1d"]
    accuracies = [[float(a) for a in cell.split()] for cell in table.test_accuracies]
    assert all(len(per_seed) == 2 for per_seed in accuracies)
    spread = [round((max(a) - min(a)) * 100, 2) for a in accuracies]
    assert table.spread_points.tolist() == pytest.approx(spread)
    assert table.within_1_point.tolist() == [s <= 1 for s in spread]
    assert table.mean_accuracy.tolist() == pytest.approx([np.mean(a) for a in accuracies],
                                                         abs=1e-4)
    assert table.ci_width_points[0] == pytest.approx(10) and pd.isna(table.ci_low[1])
    assert all(1 <= int(e) <= 2 for cell in table.best_epochs for e in cell.split())
    markdown = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "- command: `python benchmarks/seed_spread.py --params" in markdown
    assert " > " in markdown and "CIs unknown" in markdown
    assert "dense seed 43: test accuracy" in capsys.readouterr().out

    # A later run of one architecture keeps the other's row, re-reading its CI.
    (tmp_path / "eval" / "dense.json").write_text('{"accuracy_ci_low": 0.7, '
                                                  '"accuracy_ci_high": 0.8}')
    seed_spread.main([*common, "--architectures", "conv1d", "--seeds", "42", "43",
                      "--out", str(out)])
    refilled = pd.read_csv(out.with_suffix(".csv"))
    assert list(refilled.architecture) == ["dense", "conv1d"]
    assert refilled.test_accuracies.tolist() == table.test_accuracies.tolist()
    assert refilled.ci_low[0] == 0.7 and refilled.measured[0] == table.measured[0]
    assert "kept from earlier runs of this script (see `measured`): dense" in \
        out.with_suffix(".md").read_text(encoding="utf-8")

    # --committed-seed reads the params' seed (42) from the committed run instead of training.
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "dense.json").write_text('{"epochs": 2, "best_epoch": 1, '
                                                   '"best_val_accuracy": 0.25}')
    (tmp_path / "eval" / "dense.json").write_text('{"accuracy": 0.125, "accuracy_ci_low": 0.1, '
                                                  '"accuracy_ci_high": 0.2}')
    committed = tmp_path / "results" / "committed"
    seed_spread.main([*common, "--architectures", "dense", "--seeds", "42", "43",
                      "--committed-seed", "--train-metrics-dir", str(tmp_path / "train"),
                      "--out", str(committed)])
    row = pd.read_csv(committed.with_suffix(".csv")).iloc[0]
    assert row.test_accuracies.split() == ["0.125", table.test_accuracies[0].split()[1]]
    assert row.best_val_accuracies.split()[0] == "0.25"
    assert "dense seed 42: test accuracy 0.1250" in capsys.readouterr().out

    again = tmp_path / "results" / "same_seed"
    seed_spread.main([*common, "--architectures", "dense", "--seeds", "42", "42",
                      "--out", str(again)])
    same = pd.read_csv(again.with_suffix(".csv"))
    first, second = same.test_accuracies[0].split()
    assert first == second and same.spread_points[0] == 0
    assert first == table.test_accuracies[0].split()[0]


@pytest.mark.parametrize("cis, verdict, survives", [
    ((0.86, 0.87, 0.84, 0.85), "CIs do not overlap", True),
    ((0.85, 0.87, 0.84, 0.86), "CIs overlap", False),
    ((0.84, 0.86, 0.85, 0.87), "CIs overlap", False),
    ((0.87, 0.88, 0.89, 0.90), "CIs do not overlap but rank them the other way", False),
])
def test_a_gap_survives_only_when_the_ci_order_agrees_with_the_mean_order(cis, verdict, survives):
    seed_spread = load_script(PROJECT_ROOT / "benchmarks" / "seed_spread.py")
    better_low, better_high, worse_low, worse_high = cis
    better = pd.Series({"architecture": "a", "mean_accuracy": 0.90, "spread_points": 0.5,
                        "ci_low": better_low, "ci_high": better_high})
    worse = pd.Series({"architecture": "b", "mean_accuracy": 0.88, "spread_points": 0.5,
                       "ci_low": worse_low, "ci_high": worse_high})
    text = seed_spread.comparison(better, worse)
    assert f"; {verdict}" in text and text.endswith("survives both" if survives else "not robust")


LEVERS = PROJECT_ROOT / "benchmarks" / "recurrent_levers.py"


def test_masked_pooling_leaves_the_padding_out():
    levers = load_script(LEVERS)
    states = np.array([[[9.0, -9.0], [1.0, 2.0], [3.0, -1.0]]], dtype="float32")
    mask = np.array([[False, True, True]])
    pooled = {mode: np.asarray(levers.MaskedPooling(mode)(states, mask=mask))
              for mode in ("max", "mean")}
    assert pooled["max"] == pytest.approx(np.array([[3.0, 2.0]]))
    assert pooled["mean"] == pytest.approx(np.array([[2.0, 0.5]]))


@pytest.mark.parametrize("pooling, bidirectional", [("maxmean", False), ("attention", True),
                                                    ("max", False), ("mean", True)])
def test_a_pooled_rnn_scores_a_review_the_same_whatever_its_padding(pooling, bidirectional):
    levers = load_script(LEVERS)
    model = levers.PooledRNN(30, 4, 3, 0.0, pooling, bidirectional)
    short = np.array([[0, 0, 5, 7, 9], [0, 3, 4, 5, 6]], dtype="int32")
    wide = np.concatenate([np.zeros((2, 6), "int32"), short], axis=1)
    assert np.asarray(model(short)) == pytest.approx(np.asarray(model(wide)), abs=1e-6)


def test_the_adversarial_step_learns_from_the_moved_embeddings_too():
    import keras

    levers = load_script(LEVERS)
    tokens = np.array([[0, 2, 3, 4], [5, 6, 7, 8]] * 4, dtype="int32")
    labels = np.array([0.0, 1.0] * 4, dtype="float32")
    weights = {}
    for epsilon in (0.0, 1.0):
        keras.utils.set_random_seed(0)
        model = levers.PooledRNN(10, 4, 3, 0.0, "maxmean", False, epsilon)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy",
                      metrics=["accuracy"])
        history = model.fit(tokens, labels, batch_size=8, epochs=1, verbose=0).history
        weights[epsilon] = model.get_weights()
        assert set(history) == {"loss", "accuracy"}
    # the same start and batch: only the adversarial term can move the weights differently
    assert any(not np.allclose(a, b) for a, b in zip(weights[0.0], weights[1.0], strict=True))


def test_a_language_model_learns_the_next_word_and_its_weights_start_the_classifier():
    levers = load_script(LEVERS)
    # two sentences, "2 3 4 5 6 7 8 9" and "2 3 4 5", again and again: a next-word model learns
    # them quickly
    sequences = [np.arange(2, 10, dtype="int32")] * 64 + [np.arange(2, 6, dtype="int32")] * 64
    settings = {"epochs": 8, "batch_size": 16, "sampled": 8, "learning_rate": 0.02}
    lm = levers.pretrain_language_model(sequences, 12, 4, 5, 6, 3, seed=0, settings=settings)
    assert np.mean(lm["losses"][-8:]) < 0.5 * np.mean(lm["losses"][:8])
    model = levers.PooledRNN(12, 4, 5, 0.0, "attention", False)
    tokens = np.array([[0, 2, 3, 4, 5]], dtype="int32")
    before = np.asarray(model(tokens))
    levers.start_from_language_model(model, lm)
    assert np.array_equal(model.embedder.get_weights()[0], lm["embedding"][0])
    gru = [layer for layer in model.inner.layers if layer.__class__.__name__ == "GRU"]
    assert len(gru) == 1
    assert all(np.array_equal(a, b) for a, b in
               zip(gru[0].get_weights(), lm["gru"], strict=True))
    assert not np.allclose(np.asarray(model(tokens)), before)  # the start reaches the prediction
