import random

import numpy as np
import pandas as pd
import yaml
from helpers import NEGATIVE, POSITIVE, PROJECT_ROOT, synthetic_review

from pipeline.baseline import INPUT_PATH, build_baseline, clean, fit_and_predict
from pipeline.core.config import BaselineParams
from pipeline.core.data import split_reviews


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
    model = build_baseline(BaselineParams(min_df=2, C=10.0), seed=0)
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


def test_baseline_reads_the_same_table_as_prepare():
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    tables = {name: {d for d in stages[name]["deps"] if d.endswith(".parquet")}
              for name in ("prepare", "baseline")}
    assert tables["prepare"] == tables["baseline"] == {INPUT_PATH.as_posix()}
