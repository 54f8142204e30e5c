"""Lever: word vectors learned from the unlabelled reviews as a recurrent model's starting point.

    python benchmarks/unlabelled_pretraining.py                  # after `dvc repro`, from the root
    python benchmarks/unlabelled_pretraining.py --architectures attention_rnn lstm --epochs 5

Trains word2vec (gensim, CBOW, one worker, a fixed seed; run it with PYTHONHASHSEED=0, as the
committed results were: it seeds each word's start with Python's `hash`, which the pretrain
stage replaces) on the training reviews of prepare's fit and validation parts plus the 50,000
unlabelled reviews, never on the test reviews, tokenized as the networks read them. Each
architecture is then trained as the train stage trains it (tuned hyperparameters, schedule,
seed), with its embedding initialized from those vectors (the words word2vec never saw keep
their random start; unlike the pretrain stage, the vectors are scaled by the spread of all of
word2vec's vectors, not of the vocabulary's) and scored on the test split, beside the committed
run from a random start (metrics/eval/<arch>.json; with --random-start, trained here too, for
params that differ from the committed ones). Also scores the hybrid each would make with NBSVM
(exported/nbsvm, stacked on validation predictions as the hybrid stage does). Writes
benchmarks/results/unlabelled_pretraining.{csv,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.training_throughput import write_results  # noqa: E402
from pipeline.core.batching import predict_proba  # noqa: E402
from pipeline.core.config import load_params  # noqa: E402
from pipeline.core.data import (  # noqa: E402
    load_split,
    load_vocabulary,
    split_reviews,
    tokenized,  # noqa: E402
)
from pipeline.core.io import read_json  # noqa: E402
from pipeline.core.models import build_model  # noqa: E402
from pipeline.core.paths import (  # noqa: E402
    EVAL_METRICS_DIR,
    EXPORT_DIR,
    MODEL_FILE,
    UNLABELLED_PATH,
    VALIDATED_PATH,
)
from pipeline.core.stacking import blend, fit_blend  # noqa: E402
from pipeline.core.training import compile_model, final_model_params, fit  # noqa: E402
from pipeline.serving.text_model import predict_texts  # noqa: E402

OUT = Path("benchmarks/results/unlabelled_pretraining")


def word_vectors(texts: list[str], dim: int, epochs: int, seed: int):
    from gensim.models import Word2Vec

    sentences = tokenized(texts)
    started = time.perf_counter()
    model = Word2Vec(sentences, vector_size=dim, window=5, min_count=2, sg=0, workers=1,
                     epochs=epochs, seed=seed)
    return model.wv, time.perf_counter() - started, sum(map(len, sentences))


def embedding_matrix(vectors, vocabulary: list[str], current: np.ndarray) -> tuple[np.ndarray,
                                                                                  float]:
    matrix, found = current.copy(), 0
    scale = current.std() / max(float(np.std(vectors.vectors)), 1e-9)
    for index, word in enumerate(vocabulary):
        if index > 1 and word in vectors.key_to_index:
            matrix[index] = vectors[word] * scale
            found += 1
    return matrix, found / max(len(vocabulary) - 2, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architectures", nargs="+", default=["attention_rnn"])
    parser.add_argument("--epochs", type=int, default=5, help="word2vec epochs")
    parser.add_argument("--random-start", action="store_true",
                        help="also train from a random start here, instead of reading the "
                             "committed run's test accuracy (for params that differ from it)")
    args = parser.parse_args()
    params = load_params()
    reviews = pd.read_parquet(VALIDATED_PATH)
    splits = split_reviews(reviews, params.prepare.val_fraction, params.seed)
    unlabelled = pd.read_parquet(UNLABELLED_PATH).text.tolist()
    texts = splits["train"].text.tolist() + splits["val"].text.tolist() + unlabelled
    data = {split: load_split(split) for split in ("train", "val", "test")}
    vocabulary = load_vocabulary()
    nbsvm = keras.models.load_model(EXPORT_DIR / "nbsvm" / MODEL_FILE)
    nb_val = predict_texts(nbsvm, splits["val"].text.tolist())
    nb_test = predict_texts(nbsvm, splits["test"].text.tolist())
    rows = []
    for architecture in args.architectures:
        model_params, _ = final_model_params(params, architecture)
        dim = model_params.hyperparameters["embedding_dim"]
        vectors, w2v_seconds, tokens = word_vectors(texts, dim, args.epochs, params.seed)
        row = {"architecture": architecture, "vocab_size": params.prepare.vocab_size,
               "embedding_dim": dim, "word2vec_epochs": args.epochs,
               "word2vec_tokens": tokens, "word2vec_seconds": round(w2v_seconds, 1)}
        for start in (("random", "word2vec") if args.random_start else ("word2vec",)):
            result = train_and_score(architecture, params, data, vocabulary,
                                     vectors if start == "word2vec" else None, nb_val, nb_test)
            row.update({f"{key}_{start}": value for key, value in result.items()})
        if not args.random_start:
            row["test_accuracy_random"] = read_json(
                EVAL_METRICS_DIR / f"{architecture}.json")["accuracy"]
        rows.append(row)
        print(row, flush=True)
        write(pd.DataFrame(rows))


def train_and_score(architecture: str, params, data: dict, vocabulary: list[str], vectors,
                    nb_val: np.ndarray, nb_test: np.ndarray) -> dict:
    """Train as the train stage does, from `vectors` (None: a random start); test accuracy,
    alone and stacked with NBSVM on validation predictions as the hybrid stage does."""
    model_params, _ = final_model_params(params, architecture)
    keras.utils.set_random_seed(params.seed)
    model = build_model(architecture, params.prepare.vocab_size, params.prepare.maxlen,
                        **model_params.hyperparameters)
    coverage = None
    if vectors is not None:
        layer = model.get_layer("embedding")
        matrix, coverage = embedding_matrix(vectors, vocabulary, layer.get_weights()[0])
        layer.set_weights([matrix])
    compile_model(model, model_params.learning_rate, params.train, model_params.optimizer)
    _, seconds = fit(model, data, model_params, params.train, params.prepare.padding,
                     params.seed)
    width = params.train.bucket_width
    test_p = predict_proba(model, data["test"][0], 512, width, params.prepare.padding)
    val_p = predict_proba(model, data["val"][0], 512, width, params.prepare.padding)
    weights, bias = fit_blend([val_p, nb_val], data["val"][1], params.hybrid.C, params.seed)
    hybrid = blend([test_p, nb_test], weights, bias)
    return {"test_accuracy": round(float(np.mean((test_p >= 0.5) == data["test"][1])), 4),
            "hybrid_test_accuracy": round(float(np.mean((hybrid >= 0.5) == data["test"][1])), 4),
            "train_seconds": round(seconds, 1),
            "vocabulary_coverage": None if coverage is None else round(coverage, 4)}


def write(table: pd.DataFrame) -> None:
    write_results(OUT, table, "Unlabelled pretraining (word2vec start)")


if __name__ == "__main__":
    main()
