"""Stage `pretrain`: word vectors learned from the unlabelled reviews, for the recurrent models
that start from them (params.yaml `pretrain.architectures`).

word2vec (gensim, CBOW) reads the training reviews of prepare's fit and validation parts plus the
50,000 unlabelled reviews, never the test reviews, tokenized as prepare tokenizes
(pipeline.core.data.standardize). One worker thread, `seed` and a hash that does not depend on
PYTHONHASHSEED make the vectors the same bytes on every run. The train and tune stages then
start those architectures' embedding from them (pipeline.core.training.start_embedding).

With `pretrain.architectures` empty (the default: on this machine the start did not pay off, see
docs/benchmarks.md) no vectors are learned and the files hold none.

Reads data/validated/reviews.parquet, data/unlabelled.parquet and data/prepared/vocab.txt.
Writes data/pretrained/vectors.npy (one row per embedding row, prepare.vocab_size of them,
zeros where word2vec has no vector) and found.npy (which rows it has), metrics/pretrain.json
and timings/pretrain.json, and logs them to an MLflow run tagged stage=pretrain.
"""

from __future__ import annotations

import logging
import time
import zlib

import mlflow
import numpy as np
import pandas as pd

from pipeline import UserError
from pipeline.core import tracking
from pipeline.core.config import PretrainParams, load_params
from pipeline.core.data import load_vocabulary, new_reviews, split_reviews, tokenized
from pipeline.core.io import atomic_path, write_json
from pipeline.core.paths import (
    PRETRAIN_METRICS_PATH,
    PRETRAIN_TIMINGS_PATH,
    PRETRAINED_DIR,
    UNLABELLED_PATH,
    VALIDATED_PATH,
)
from pipeline.core.stage import stage_app
from pipeline.core.training import FOUND_FILE, VECTORS_FILE

log = logging.getLogger(__name__)


def stable_hash(text: str) -> int:
    """gensim seeds each word's start vector with a hash of it: Python's own `hash` changes
    with PYTHONHASHSEED, this one does not."""
    return zlib.crc32(text.encode("utf-8"))


def word_vectors(sentences: list[list[str]], params: PretrainParams, seed: int):
    from gensim.models import Word2Vec

    return Word2Vec(sentences, vector_size=params.dim, window=params.window,
                    min_count=params.min_count, sg=0, workers=1, epochs=params.epochs,
                    seed=seed, hashfxn=stable_hash).wv


def vocabulary_rows(vectors, vocabulary: list[str], dim: int,
                    size: int) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, found): `size` rows (prepare.vocab_size, the embedding's; a small corpus has
    fewer words), one per token id; padding (0), out-of-vocabulary (1) and ids past the
    vocabulary get none. `vectors`: gensim's KeyedVectors, or {} for none."""
    rows = np.zeros((max(size, len(vocabulary)), dim), dtype=np.float32)
    found = np.zeros(len(rows), dtype=bool)
    known = getattr(vectors, "key_to_index", {})
    for index, word in enumerate(vocabulary):
        if index > 1 and word in known:
            rows[index], found[index] = vectors[word], True
    return rows, found


def main() -> None:
    logging.getLogger("gensim").setLevel(logging.WARNING)  # its per-second progress lines
    params = load_params()
    for path in (VALIDATED_PATH, UNLABELLED_PATH):
        if not path.exists():
            raise UserError(f"{path} not found: run `dvc repro validate` first")
    splits = split_reviews(pd.read_parquet(VALIDATED_PATH), params.prepare.val_fraction,
                           params.seed, new_reviews(params.incoming.use))
    texts = [*splits["train"].text, *splits["val"].text,
             *pd.read_parquet(UNLABELLED_PATH).text]
    vocabulary = load_vocabulary()
    started = time.perf_counter()
    if params.pretrain.architectures:
        sentences = tokenized(texts)
        vectors = word_vectors(sentences, params.pretrain, params.seed)
        rows, found = vocabulary_rows(vectors, vocabulary, params.pretrain.dim,
                                      params.prepare.vocab_size)
        learned, tokens = len(vectors.key_to_index), sum(map(len, sentences))
    else:  # no architecture starts from the vectors: none are learned
        log.info("pretrain.architectures is empty: no word vectors to learn")
        rows, found = vocabulary_rows({}, vocabulary, params.pretrain.dim,
                                      params.prepare.vocab_size)
        learned, tokens = 0, 0
    seconds = time.perf_counter() - started
    summary = {"reviews": len(texts), "tokens": tokens, "words_learned": learned,
               "vocabulary_coverage": round(float(found[2:].mean()), 4)}

    tracking.setup()
    tags = {"stage": "pretrain", "data_hash": tracking.data_hash(VALIDATED_PATH.parent)}
    with mlflow.start_run(run_name="pretrain", tags=tags):
        mlflow.log_params({f"pretrain.{k}": v for k, v in vars(params.pretrain).items()})
        mlflow.log_metrics({**summary, "seconds": seconds})
    with atomic_path(PRETRAINED_DIR) as tmp:
        tmp.mkdir()
        np.save(tmp / VECTORS_FILE, rows)
        np.save(tmp / FOUND_FILE, found)
    write_json(PRETRAIN_METRICS_PATH, summary)
    write_json(PRETRAIN_TIMINGS_PATH, {"seconds": round(seconds, 1)})
    if learned:
        log.info("word2vec on %s reviews (%s tokens): %s of the vocabulary learned, %.0f s",
                 f"{len(texts):,}", f"{tokens:,}", summary["vocabulary_coverage"], seconds)


if __name__ == "__main__":
    stage_app(__doc__, main)()
