"""Score raw reviews with the champion (or any architecture, run or model URI).

    imdb predict "A wonderful film." "Dreadful."
    imdb predict --file reviews.csv --column text --format jsonl
    cat reviews.txt | imdb predict
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from pipeline import UserError
from pipeline.export import EXPORT_DIR, TEXT_COLUMN, predict_texts
from pipeline.train import MODEL_FILE

DEFAULT_MODEL = "models:/imdb-sentiment@champion"


def decode(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"{source} is not UTF-8 text (bad byte at offset {err.start}); "
                        "convert it, e.g. `iconv -f latin1 -t utf-8`") from None


def read_reviews(path: Path, column: str | None = None) -> list[str]:
    """Reviews from a .csv or .jsonl file (a text column) or any other file, one per line."""
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


def _column(table: pd.DataFrame, column: str | None, path: Path) -> list[str]:
    candidates = [column] if column else [TEXT_COLUMN, "text"]
    for name in candidates:
        if name in table.columns:
            return table[name].fillna("").astype(str).tolist()
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

    from pipeline import tracking

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
    """One row per review: label and probability; blank reviews get no score."""
    table = pd.DataFrame({TEXT_COLUMN: reviews, "label": "unknown", "probability": float("nan")})
    scorable = table[TEXT_COLUMN].str.strip() != ""
    if scorable.any():
        probability = scorer(table.loc[scorable, TEXT_COLUMN].tolist())
        table.loc[scorable, "probability"] = probability
        table.loc[scorable, "label"] = ["positive" if p >= threshold else "negative"
                                        for p in probability]
    return table


def render(table: pd.DataFrame, fmt: str) -> str:
    if fmt == "jsonl":
        return "\n".join(
            json.dumps({"label": row.label,
                        "probability": None if pd.isna(row.probability)
                        else round(float(row.probability), 4),
                        TEXT_COLUMN: row.review}, ensure_ascii=False)
            for row in table.itertuples())
    lines = [f"{'label':<9} {'probability':>11}  review"]
    for row in table.itertuples():
        shown = " ".join(row.review.split())
        shown = shown if len(shown) <= 70 else shown[:67] + "..."
        probability = "-" if pd.isna(row.probability) else f"{row.probability:.4f}"
        lines.append(f"{row.label:<9} {probability:>11}  {shown}")
    return "\n".join(lines)


def gather(reviews: list[str], file: Path | None, column: str | None) -> list[str]:
    if file is not None:
        reviews = [*reviews, *read_reviews(file, column)]
    if not reviews and not sys.stdin.isatty():
        reviews = [line for line in decode(sys.stdin.buffer.read(), "standard input").splitlines()
                   if line.strip()]
    if not reviews:
        raise UserError("no reviews given: pass them as arguments, with --file, or on stdin")
    return reviews
