"""Score raw reviews with the champion (or any architecture, run or model URI).

    imdb predict "A wonderful film." "Dreadful."
    imdb predict --file reviews.csv --column text --format jsonl
    cat reviews.txt | imdb predict

Every review must be a string with some text in it (pipeline.serving): a blank review, or a
null or a number in a .jsonl file, is refused with an error naming its row, and nothing is
scored. In a one-review-per-line file or on stdin, blank lines separate reviews and are skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import UserError
from pipeline.core.paths import EXPORT_DIR, MODEL_FILE
from pipeline.serving import TEXT_COLUMN, check_reviews
from pipeline.serving.text_model import predict_texts

DEFAULT_MODEL = "models:/imdb-sentiment@champion"


def decode(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"{source} is not UTF-8 text (bad byte at offset {err.start}); "
                        "convert it, e.g. `iconv -f latin1 -t utf-8`") from None


def read_reviews(path: Path, column: str | None = None) -> list:
    """Reviews from a .csv or .jsonl file (a text column) or any other file, one per line.

    A .jsonl value comes back as it is (a null or a number too), for check_reviews to refuse.
    """
    if not path.is_file():
        raise UserError(f"{path} not found")
    text = decode(path.read_bytes(), str(path))
    if path.suffix == ".csv":
        from io import StringIO

        table = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False)
        return _column(table, column, path)
    if path.suffix in (".jsonl", ".ndjson"):
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise UserError(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
        return _column(pd.DataFrame(rows), column, path)
    return [line for line in text.splitlines() if line.strip()]


def _column(table: pd.DataFrame, column: str | None, path: Path) -> list:
    candidates = [column] if column else [TEXT_COLUMN, "text"]
    for name in candidates:
        if name in table.columns:
            return table[name].tolist()
    raise UserError(f"{path} has no column {' or '.join(map(repr, candidates))}; columns: "
                    f"{', '.join(map(str, table.columns))}. Name one with --column")


def load_scorer(model: str):
    """A function list[str] -> probabilities, for an architecture name or an MLflow model URI."""
    local = EXPORT_DIR / model / MODEL_FILE
    if "/" not in model and ":" not in model:
        if not local.exists():
            raise UserError(f"no exported model for architecture {model!r} at {local}: run "
                            f"`dvc repro export@{model}`, or pass an MLflow model URI")
        import keras

        keras_model = keras.models.load_model(local)  # pipeline.export registered its layers
        return lambda texts: predict_texts(keras_model, texts)

    import mlflow

    from pipeline.core import tracking

    mlflow.set_tracking_uri(tracking.tracking_uri())
    try:
        pyfunc = mlflow.pyfunc.load_model(model)
    except Exception as err:  # MLflow raises several types for a missing model or alias
        raise UserError(f"cannot load model {model!r} from {tracking.tracking_uri()}: "
                        f"{str(err)[:300]}. Run `dvc repro` to train and register one, or pass "
                        "--model with an architecture name or another model URI") from None
    return lambda texts: pyfunc.predict(pd.DataFrame({TEXT_COLUMN: texts}))[
        "probability"].to_numpy()


def score(reviews: list[str], scorer, threshold: float = 0.5) -> pd.DataFrame:
    """One row per review: label and probability.

    Reviews that break the input contract (pipeline.serving: null, not a string, empty or only
    whitespace) raise InvalidReview naming their rows, before anything is scored.
    """
    texts = check_reviews(reviews)
    probability = np.asarray(scorer(texts), dtype="float64").reshape(-1)
    return pd.DataFrame({TEXT_COLUMN: texts,
                         "label": np.where(probability >= threshold, "positive", "negative"),
                         "probability": probability})


def render(table: pd.DataFrame, fmt: str) -> str:
    if fmt == "jsonl":
        return "\n".join(
            json.dumps({"label": row.label, "probability": round(float(row.probability), 4),
                        TEXT_COLUMN: row.review}, ensure_ascii=False)
            for row in table.itertuples())
    lines = [f"{'label':<9} {'probability':>11}  review"]
    for row in table.itertuples():
        shown = " ".join(row.review.split())
        shown = shown if len(shown) <= 70 else shown[:67] + "..."
        lines.append(f"{row.label:<9} {row.probability:>11.4f}  {shown}")
    return "\n".join(lines)


def gather(reviews: list[str], file: Path | None, column: str | None) -> list[str]:
    """The reviews from the arguments, then --file, else stdin; InvalidReview names a bad row
    (counted from 0 over the arguments and then the file's reviews) before any model loads."""
    if file is not None:
        reviews = [*reviews, *read_reviews(file, column)]
    if not reviews and not sys.stdin.isatty():
        reviews = [line for line in decode(sys.stdin.buffer.read(), "standard input").splitlines()
                   if line.strip()]
    if not reviews:
        raise UserError("no reviews given: pass them as arguments, with --file, or on stdin")
    return check_reviews(reviews)
