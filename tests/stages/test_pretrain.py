"""The pretrain stage (word2vec from the unlabelled reviews) and the embedding start it gives."""

import dataclasses
import os
import random
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import NEGATIVE, POSITIVE, PROJECT_ROOT, synthetic_review

from pipeline import UserError
from pipeline.core.config import PretrainParams, load_params
from pipeline.core.data import tokenized
from pipeline.core.models import build_model
from pipeline.core.training import FOUND_FILE, VECTORS_FILE, start_embedding
from pipeline.pretrain import stable_hash, vocabulary_rows, word_vectors

SMALL = load_params(PROJECT_ROOT / "params.small.yaml")
PARAMS = dataclasses.replace(SMALL, pretrain=dataclasses.replace(SMALL.pretrain,
                                                                 architectures=("attention_rnn",)))


def sentences(n: int = 200) -> list[list[str]]:
    rng = random.Random(0)
    return tokenized([synthetic_review(rng, i % 2 == 0) for i in range(n)])


def test_reviews_are_tokenized_as_prepare_tokenizes_them():
    assert tokenized(["Don't miss it!<br />Great film."]) == [["dont", "miss", "it", "great",
                                                                "film"]]


def test_the_hash_that_seeds_word2vec_does_not_depend_on_pythonhashseed():
    code = "from pipeline.pretrain import stable_hash; print(hash('great'), stable_hash('great'))"
    runs = [subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, text=True, check=True,
                           capture_output=True, env={**os.environ, "PYTHONHASHSEED": seed})
            .stdout.split()[-2:] for seed in ("1", "2")]
    assert runs[0][0] != runs[1][0]  # Python's own hash moves with PYTHONHASHSEED
    assert runs[0][1] == runs[1][1] == str(stable_hash("great"))
    assert stable_hash("great") != stable_hash("awful")


def test_word2vec_gives_the_same_vectors_twice_and_groups_the_cue_words():
    params = PretrainParams(dim=8, epochs=20, min_count=1)
    first, second = (word_vectors(sentences(), params, seed=0) for _ in range(2))
    assert np.array_equal(first.vectors, second.vectors)
    together = first.n_similarity(POSITIVE[:4], POSITIVE[4:])
    apart = first.n_similarity(POSITIVE[:4], NEGATIVE[:4])
    assert together > apart


def test_vocabulary_rows_leave_padding_oov_and_unseen_words_without_a_vector():
    vectors = word_vectors(sentences(), PretrainParams(dim=8, min_count=1), seed=0)
    rows, found = vocabulary_rows(vectors, ["", "[UNK]", "great", "zzz-unseen"], dim=8, size=6)
    assert rows.shape == (6, 8)  # the embedding's rows: a small corpus has fewer words
    assert found.tolist() == [False, False, True, False, False, False]
    assert np.array_equal(rows[2], vectors["great"]) and not rows[[0, 1, 3, 4, 5]].any()


def test_with_no_architecture_listed_no_row_gets_a_vector():
    rows, found = vocabulary_rows({}, ["", "[UNK]", "great"], dim=4, size=3)
    assert not found.any() and not rows.any() and rows.shape == (3, 4)


def vectors_dir(tmp_path, vocab_size: int, dim: int):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(vocab_size, dim)).astype(np.float32)
    found = np.arange(vocab_size) % 2 == 0
    np.save(tmp_path / VECTORS_FILE, np.where(found[:, None], vectors, 0))
    np.save(tmp_path / FOUND_FILE, found)
    return vectors, found


def tiny(architecture: str = "attention_rnn", dim: int = 8):
    keras.utils.set_random_seed(0)
    return build_model(architecture, 50, 20, embedding_dim=dim, units=4)


def test_a_listed_architecture_starts_from_the_vectors_where_word2vec_learned_the_word(tmp_path):
    vectors, found = vectors_dir(tmp_path, 50, 8)
    model = tiny()
    (before,) = model.get_layer("embedding").get_weights()
    assert start_embedding(model, "attention_rnn", PARAMS, tmp_path)
    (after,) = model.get_layer("embedding").get_weights()
    assert np.array_equal(after[~found], before[~found])  # no vector: the random start stays
    scale = before.std() / vectors[found].std()
    assert after[found] == pytest.approx(vectors[found] * scale, rel=1e-5)


def test_an_unlisted_architecture_keeps_its_random_start(tmp_path):
    vectors_dir(tmp_path, 50, 8)
    model = tiny("gru")
    (before,) = model.get_layer("embedding").get_weights()
    assert not start_embedding(model, "gru", PARAMS, tmp_path)
    assert np.array_equal(model.get_layer("embedding").get_weights()[0], before)


def test_missing_or_mis_sized_vectors_are_named_with_the_fix(tmp_path):
    with pytest.raises(UserError, match=r"vectors.npy not found: run `dvc repro pretrain`"):
        start_embedding(tiny(), "attention_rnn", PARAMS, tmp_path)
    vectors_dir(tmp_path, 50, 16)
    with pytest.raises(UserError, match=r"holds \(50, 16\) vectors, but attention_rnn's "
                                        r"embedding is \(50, 8\): run `dvc repro pretrain`"):
        start_embedding(tiny(), "attention_rnn", PARAMS, tmp_path)
    unlisted = dataclasses.replace(PARAMS.pretrain, architectures=())
    assert not start_embedding(tiny(), "attention_rnn",
                               dataclasses.replace(PARAMS, pretrain=unlisted), tmp_path)
