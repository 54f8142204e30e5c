import random

import keras
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tensorflow as tf
import yaml
from helpers import NEGATIVE, POSITIVE, PROJECT_ROOT, synthetic_review

from pipeline import UserError
from pipeline.baseline import INPUT_PATH, build_baseline, feature_count, fit_and_predict
from pipeline.core.bag_of_words import clean, log_count_ratios
from pipeline.core.config import NbsvmParams, TfidfParams, load_params
from pipeline.core.data import split_reviews
from pipeline.core.paths import BASELINE_NAMES, INCOMING_PATH


def synthetic_reviews(per_label: int = 60) -> pd.DataFrame:
    rng = random.Random(0)
    rows = [{"id": i, "split": split, "label": label, "movie_id": f"tt{split}{label}{i // 3}",
             "text": synthetic_review(rng, label == 1)}
            for split in ("train", "test") for label in (0, 1) for i in range(per_label)]
    return pd.DataFrame(rows)


def test_clean_lowercases_and_drops_html():
    assert clean("Great<br /><br />Film") == "great  film"


def test_baseline_learns_the_cue_words_of_a_synthetic_set():
    splits = split_reviews(synthetic_reviews(), val_fraction=0.25, seed=0)
    model = build_baseline("tfidf_logreg", TfidfParams(min_df=2, C=10.0), seed=0)
    result = fit_and_predict(model, splits)
    assert set(result) == {"val", "test", "fit_seconds", "test_seconds"}
    assert len(result["test"]) == len(splits["test"]) == 120
    test_accuracy = np.mean((result["test"] >= 0.5) == splits["test"].label.to_numpy())
    assert test_accuracy >= 0.95
    vocabulary = model.named_steps["tfidf"].get_feature_names_out()
    weights = model.named_steps["logreg"].coef_[0]
    strongest_positive = set(vocabulary[np.argsort(weights)[-8:]])
    strongest_negative = set(vocabulary[np.argsort(weights)[:8]])
    assert len(strongest_positive & set(POSITIVE)) >= 4
    assert len(strongest_negative & set(NEGATIVE)) >= 4


def test_nbsvm_scales_each_ngram_by_its_naive_bayes_log_count_ratio():
    x = sp.csr_matrix(np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1], [0, 1, 0]], dtype=np.float32))
    # positive counts + 1: [3, 1, 2] (sum 6); negative: [1, 3, 2] (sum 6)
    ratios = log_count_ratios(x, np.array([1, 1, 0, 0]), alpha=1.0)
    assert ratios == pytest.approx(np.log([3, 1 / 3, 1]), abs=1e-6)


def test_nbsvm_learns_the_cue_words_and_scores_raw_text_after_a_save(tmp_path):
    splits = split_reviews(synthetic_reviews(), val_fraction=0.25, seed=0)
    model = build_baseline("nbsvm", NbsvmParams(), seed=0)
    result = fit_and_predict(model, splits)
    assert np.mean((result["test"] >= 0.5) == splits["test"].label.to_numpy()) >= 0.95
    vocabulary = model.model.get_layer("ngrams").get_vocabulary()
    weights = model.model.get_layer("nb_weighted").get_weights()[0].ravel()
    assert {"!", "a", "great !"} <= set(vocabulary)  # `!` and one-letter words are tokens
    assert feature_count(model) == len(vocabulary) - 1 == len(weights) - 1  # less the OOV
    strongest = [vocabulary[i] for i in np.argsort(weights)]
    assert len(set(strongest[-8:]) & set(POSITIVE)) >= 4
    assert len(set(strongest[:8]) & set(NEGATIVE)) >= 4
    model.model.save(tmp_path / "nbsvm.keras")
    reloaded = keras.models.load_model(tmp_path / "nbsvm.keras")
    texts = splits["test"].text.tolist()[:16] + ["<br />Great!!", ""]
    assert np.asarray(reloaded.predict_on_batch(tf.constant(texts))).ravel() == pytest.approx(
        model.predict_proba(texts)[:, 1], abs=1e-6)


def test_every_baseline_in_params_has_a_builder_and_an_unknown_one_is_named():
    assert tuple(vars(load_params(PROJECT_ROOT / "params.yaml").baselines)) == BASELINE_NAMES
    with pytest.raises(UserError, match="unknown baseline 'svm': known are tfidf_logreg, nbsvm"):
        build_baseline("svm", None, seed=0)


def test_baseline_reads_the_same_table_as_prepare():
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    tables = {name: {d for d in (stage.get("do") or stage)["deps"] if d.endswith(".parquet")}
              for name, stage in stages.items() if name in ("prepare", "baseline")}
    assert tables["prepare"] == tables["baseline"] == {INPUT_PATH.as_posix(),
                                                       INCOMING_PATH.as_posix()}
