"""What the `validate` and `intake` stages share: the near-duplicate key, word counts, and how a
violated pandera expectation becomes one line naming the expectation, what was observed and
where."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from pipeline import UserError

SHOWN_ROWS = 5

# Expectations that validate (the archive) and intake (new reviews) both check, as error
# messages and metrics name them.
NOT_EMPTY = "no empty review"
LENGTH = "review length within [min_words, max_words]"
LABELS = "labels in {0, 1}"
COPIES_AGREE = "copies of a review share one label"


class ValidationError(UserError):
    """Reviews violate an expectation."""


def normalize(texts: pd.Series) -> pd.Series:
    """Near-duplicate key: lowercase, HTML tags dropped, runs of non-alphanumerics -> one space."""
    return (texts.str.lower()
            .str.replace(r"<[^>]*>", " ", regex=True)
            .str.replace(r"[\W_]+", " ", regex=True)
            .str.strip())


def word_counts(texts: pd.Series) -> pd.Series:
    return texts.str.split().str.len().fillna(0).astype(int)


def failures(schema: pa.DataFrameSchema, frame: pd.DataFrame, keys: pd.Series,
             table: pd.DataFrame | None = None,
             shown: dict[str, Callable[[pd.DataFrame], list[str]]] | None = None) -> list[str]:
    """One line per expectation of `schema` that `frame` violates, naming the observed values
    and the first rows (by `keys`, which says where each row came from). `shown` maps an
    expectation to how its failing rows of `table` are shown, for checks whose failure case is
    not the value itself."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases
    else:
        return []
    messages = []
    for check, group in cases.groupby("check", sort=False, dropna=False):
        rows = pd.unique(group["index"].dropna())
        if shown and check in shown and table is not None:
            observed = shown[check](table.loc[rows[:SHOWN_ROWS]])
        else:
            observed = [short(v) for v in pd.unique(group.failure_case)[:SHOWN_ROWS]]
        column = group.column.dropna().unique()
        where = f" (column {column[0]})" if len(column) == 1 else ""
        text = f"expectation '{check}'{where} failed: observed {', '.join(observed)}"
        if len(rows):
            text += " in " + rows_named(keys.loc[rows])
        messages.append(text)
    return messages


def rows_named(keys: pd.Series) -> str:
    """'3 row(s): a, b, c' with at most SHOWN_ROWS named."""
    named = ", ".join(map(str, keys.iloc[:SHOWN_ROWS]))
    return f"{len(keys)} row(s): {named}" + (", ..." if len(keys) > SHOWN_ROWS else "")


def short(value, width: int = 40) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[:width - 3] + "..."
