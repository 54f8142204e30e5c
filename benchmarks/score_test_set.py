"""Seconds to score all test reviews with one raw-text model, twice in one process.

    python benchmarks/score_test_set.py hybrid 512      # exported/<name>/model.keras, batch size

Uses pipeline.serving.text_model.predict_texts, as the served model does; prints the seconds
and the accuracy of each run (the second run is warm: nothing left to trace).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.core.paths import EXPORT_DIR, MODEL_FILE, REVIEWS_PATH  # noqa: E402
from pipeline.serving.text_model import predict_texts  # noqa: E402


def main(name: str, batch_size: int) -> None:
    reviews = pd.read_parquet(REVIEWS_PATH)
    test = reviews[reviews.split == "test"]
    path = EXPORT_DIR / name / MODEL_FILE
    if not path.exists():
        sys.exit(f"{path} not found: name an exported model (`ls {EXPORT_DIR}`), after "
                 "`dvc repro`; usage: python benchmarks/score_test_set.py [name] [batch_size]")
    model = keras.models.load_model(path)
    for run in (1, 2):
        started = time.perf_counter()
        probability = predict_texts(model, test.text.tolist(), batch_size=batch_size)
        seconds = time.perf_counter() - started
        accuracy = np.mean((probability >= 0.5) == test.label.to_numpy())
        print(f"{name}, run {run}: {len(test):,} reviews in {seconds:.1f} s, "
              f"accuracy {accuracy:.4f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "hybrid",
         int(sys.argv[2]) if len(sys.argv) > 2 else 512)
