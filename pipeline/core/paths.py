"""Where each stage writes what another stage (or the CLI) reads: the files dvc.yaml names."""

from __future__ import annotations

from pathlib import Path

REVIEWS_PATH = Path("data/reviews.parquet")
UNLABELLED_PATH = Path("data/unlabelled.parquet")
VALIDATED_PATH = Path("data/validated/reviews.parquet")
INCOMING_DIR = Path("data/incoming")  # new labelled reviews arrive here (.csv, .jsonl)
INCOMING_PATH = Path("data/validated/incoming.parquet")  # those the intake stage accepted
INCOMING_METRICS_PATH = Path("metrics/incoming.json")  # counts and drift of the new reviews
PREPARED_DIR = Path("data/prepared")
PRETRAINED_DIR = Path("data/pretrained")  # word vectors per vocabulary row (stage pretrain)
PRETRAIN_METRICS_PATH = Path("metrics/pretrain.json")
PRETRAIN_TIMINGS_PATH = Path("timings/pretrain.json")
MODELS_DIR = Path("models")
HISTORY_DIR = Path("plots/history")
TRAIN_METRICS_DIR = Path("metrics/train")
TRAIN_TIMINGS_DIR = Path("timings/train")  # seconds and samples/s: this machine, not the model
TUNED_DIR = Path("tuned")
MODEL_FILE, RUN_FILE = "model.keras", "run.json"
SKLEARN_MODEL_FILE = "model.joblib"  # exported/tfidf_logreg: a scikit-learn Pipeline
EVAL_METRICS_DIR = Path("metrics/eval")
EVAL_TIMINGS_DIR = Path("timings/evaluate")  # inference time: this machine, not the model
PREDICTIONS_DIR = Path("predictions")
CURVES_DIR = Path("plots")
CURVES = ("roc", "precision_recall", "calibration")  # plots/<curve>/<model>.csv
BASELINE_NAMES = ("tfidf_logreg", "nbsvm")  # params.yaml `baselines`, as the report lists them
BASELINE_METRICS_DIR = Path("metrics/baseline")
BASELINE_TIMINGS_DIR = Path("timings/baseline")
EXPORT_DIR = Path("exported")
HYBRID_NAME = "hybrid"  # stage `hybrid`: a recurrent model and NBSVM, stacked
HYBRID_METRICS_PATH = Path("metrics/hybrid.json")
HYBRID_TIMINGS_PATH = Path("timings/hybrid.json")
LESSONS_DIR = Path("lessons")
REPORTS_DIR = Path("reports")
CANDIDATE_PATH = REPORTS_DIR / "candidate.json"  # report -> promote
PROMOTION_PATH = REPORTS_DIR / "promotion.json"  # promote's decision
PROMOTION_PAGE_PATH = REPORTS_DIR / "promotion.md"
