"""What a review is, for every path that scores one: `imdb predict`, the Python API
(`pipeline.serving.predict.score`) and the MLflow model (`pipeline.export.ReviewSentimentModel`, as
loaded with `mlflow.pyfunc.load_model` or served over HTTP by `mlflow models serve`).

The contract: a review is a string with at least one character that is not whitespace. Anything
else is refused, never scored:

- not a string (null or NaN, a number, a boolean, a list, an object): refused;
- an empty or whitespace-only string: refused the same way, since the model would answer it
  with a made-up probability (about 0.5) that no text supports.

Refusing raises `InvalidReview`, whose one-line message names the bad rows (0-based, in the
order given: the argument's position for the CLI, the list index for the API, the position in
`inputs` or `data` for HTTP; the first five, then a count), what is wrong with each, and the
fix. A batch is refused if one row is bad, so no caller mistakes a partial answer for a full
one. The served model turns the error into HTTP 400 with a JSON body `{"error_code":
"INVALID_PARAMETER_VALUE", "message": ...}`. Models registered before this contract carry their
older code and a `string`-typed signature: served, they answer as before until exported and
registered again.

This module imports neither TensorFlow nor MLflow, so checking input costs nothing.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from pipeline import UserError

TEXT_COLUMN = "review"
FIX = "send each review as a string with some text in it"
SHOWN_ROWS = 5


class InvalidReview(UserError, ValueError):
    """Input that is not a list of non-blank review strings; the message names the rows."""


def check_reviews(reviews, column: str = TEXT_COLUMN) -> list[str]:
    """The reviews as a list of `str`, in order, or InvalidReview naming each bad row.

    Takes a list or tuple, a NumPy array, a pandas Series, or a DataFrame with a `column`
    column (what the served model receives).
    """
    rows = _rows(reviews, column)
    problems = [(index, problem) for index, review in enumerate(rows)
                if (problem := review_problem(review))]
    if problems:
        raise InvalidReview(_message(problems))
    return [str(review) for review in rows]


def review_problem(review) -> str | None:
    """What makes `review` unscorable, in a few words, or None for a usable review."""
    if isinstance(review, str):
        if not review:
            return "is empty"
        return "is only whitespace" if not review.strip() else None
    if _is_null(review):
        return "is null"
    if isinstance(review, bool | np.bool_):
        return f"is a boolean ({review}), not text"
    if isinstance(review, numbers.Number):
        return f"is a number ({_short(review)}), not text"
    if isinstance(review, list | tuple | np.ndarray | pd.Series):
        return f"is a list ({_short(review)}), not text"
    if isinstance(review, dict):
        return f"is an object ({_short(review)}), not text"
    if isinstance(review, bytes):
        return "is bytes, not text: decode it as UTF-8 first"
    return f"is a {type(review).__name__}, not text"


def served_reviews(model_input) -> list[str]:
    """check_reviews for what MLflow hands the served model.

    The model's signature types `review` as `any`, so that a JSON null or number reaches the
    check as itself rather than as the text "None" or "123". For such a column MLflow's server
    hands over a JSON list of strings (`{"inputs": ["a", "b"]}`) as one row holding the whole
    list; that row is read back as the reviews it holds. The one input this cannot tell apart is
    a batch whose single review is itself a list of strings: it is scored as those strings.
    """
    rows = _rows(model_input, TEXT_COLUMN)
    if len(rows) == 1 and isinstance(rows[0], list) and all(isinstance(r, str) for r in rows[0]):
        rows = rows[0]
    return check_reviews(rows)


@contextmanager
def as_bad_request() -> Iterator[None]:
    """Turn InvalidReview into the MlflowException that MLflow's scoring server answers with
    HTTP 400 and a JSON body holding the message."""
    try:
        yield
    except InvalidReview as err:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        raise MlflowException(str(err), error_code=INVALID_PARAMETER_VALUE) from None


def _rows(reviews, column: str) -> list:
    if isinstance(reviews, str | bytes):
        raise InvalidReview(f"expected a list of reviews, got one {type(reviews).__name__}: "
                            "wrap it in a list")
    if isinstance(reviews, pd.DataFrame):
        if column not in reviews.columns:
            raise InvalidReview(f"no {column!r} column among the input's columns "
                                f"({', '.join(map(str, reviews.columns))}): name it {column!r}")
        reviews = reviews[column]
    if isinstance(reviews, pd.Series | np.ndarray):
        return reviews.tolist()
    try:
        return list(reviews)
    except TypeError:
        raise InvalidReview(f"expected a list of reviews, got a {type(reviews).__name__}: "
                            "pass a list of strings") from None


def _is_null(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _short(value, width: int = 40) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray | pd.Series) else value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _message(problems: list[tuple[int, str]]) -> str:
    shown = "; ".join(f"row {index} {problem}" for index, problem in problems[:SHOWN_ROWS])
    more = len(problems) - SHOWN_ROWS
    rest = f"; and {more} more bad row{'s' * (more > 1)}" if more > 0 else ""
    return f"cannot score {len(problems)} review(s): {shown}{rest}. Nothing was scored: {FIX}"
