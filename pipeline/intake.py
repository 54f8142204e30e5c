"""Stage `intake`: new labelled reviews from data/incoming, checked before anything learns them.

New reviews arrive as files in data/incoming: `.csv` with a header and the columns `text` and
`label`, or `.jsonl` with one object per line holding `text` (a string) and `label` (0 or 1);
other columns are ignored. Bring them in with DVC (`dvc import-url <url> data/incoming/`, later
`dvc update`), or copy them there and track them (`dvc add data/incoming/<file>`): the folder
is this stage's dependency, so `dvc repro` reruns it when a file arrives or changes. The folder
holds only its README by default, so the default run learns nothing new.

The validate stage's expectations apply to each new review (a string text, not empty, a length
within [validate.min_words, validate.max_words], a label 0 or 1), and two more: none is a copy of
a test review (leakage), and copies of a review share one label. A violated one stops the stage
with one line naming the file, the row and the expectation, and nothing is written, so nothing
is trained on the batch. Copies of training reviews and repeats inside the batch are counted,
and dropped when validate.drop_duplicates is true.

The accepted reviews are compared with the training split (drift): label balance (binomial
test), review length (two-sample Kolmogorov-Smirnov test) and the share of words outside the
training vocabulary, beside the test split's share as the reference of data the models have
not seen. A test whose p-value is below incoming.drift_p_value flags the batch; the figures go
to metrics/incoming.json and MLflow. What the accepted reviews are used for is incoming.use.

Reads data/incoming and data/validated/reviews.parquet. Writes data/validated/incoming.parquet
and metrics/incoming.json.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pandera.pandas as pa
from scipy import stats

from pipeline.core import tracking
from pipeline.core.config import IncomingParams, Params, ValidateParams, load_params
from pipeline.core.data import tokenized
from pipeline.core.expectations import (
    COPIES_AGREE,
    LABELS,
    LENGTH,
    NOT_EMPTY,
    ValidationError,
    failures,
    normalize,
    rows_named,
    word_counts,
)
from pipeline.core.io import write_json, write_parquet
from pipeline.core.paths import (
    INCOMING_DIR,
    INCOMING_METRICS_PATH,
    INCOMING_PATH,
    VALIDATED_PATH,
)
from pipeline.core.stage import stage_app

log = logging.getLogger(__name__)

FORMATS = (".csv", ".jsonl")
NOT_DATA = {"README.md", ".gitignore"}  # and DVC's *.dvc files: the folder's own furniture
COLUMNS = ("text", "label")


class _Null:
    """A missing text or label (JSON null, an absent key), shown as `null` by the checks."""

    def __repr__(self) -> str:
        return "null"


NULL = _Null()

# Expectation names of intake's own checks (the shared ones: pipeline/core/expectations.py).
TEXT_STRING = "text is a string"
NOT_TEST = "no copy of a test review"


def batch_files(folder: Path = INCOMING_DIR) -> list[Path]:
    """The data files in `folder`, by name; anything else that is not the folder's own
    furniture is refused, so a misnamed batch is not silently skipped."""
    if not folder.is_dir():
        return []
    files = []
    for path in sorted(folder.iterdir()):
        if path.name in NOT_DATA or path.suffix == ".dvc":
            continue
        if path.suffix not in FORMATS or not path.is_file():
            raise ValidationError(f"{path}: not a .csv or .jsonl file; new reviews go in "
                                  f"{folder} as CSV or JSON Lines with the columns text, label")
        files.append(path)
    return files


def read_batch(path: Path) -> pd.DataFrame:
    """A batch file as rows of (text, label, source, row), values as the file holds them;
    `row` counts data rows from 1 (CSV: after the header; JSON Lines: the line number)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValidationError(f"{path} is not UTF-8 text (byte {err.start}): save it as "
                              "UTF-8") from None
    frame = read_csv(path) if path.suffix == ".csv" else read_jsonl(path, text)
    missing = [c for c in COLUMNS if c not in frame]
    if missing:
        raise ValidationError(f"{path} has no column {missing[0]!r}: a batch needs the columns "
                              f"{', '.join(COLUMNS)}")
    frame = frame.assign(source=str(path))[[*COLUMNS, "source", "row"]]
    return frame.astype({"text": object, "label": object}).fillna({"text": NULL, "label": NULL})


def read_csv(path: Path) -> pd.DataFrame:
    """Every cell as text, so a label is checked as written ("1" is 1; "1.0" or "pos" is not)."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValidationError(f"{path} is not a readable CSV file: {err}") from None
    if "label" in frame:
        frame["label"] = frame.label.map(lambda v: {"0": 0, "1": 1}.get(v.strip(), v)
                                         ).astype(object)
    return frame.assign(row=np.arange(1, len(frame) + 1))


def read_jsonl(path: Path, text: str) -> pd.DataFrame:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValidationError(f"{path} line {number}: not JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise ValidationError(f"{path} line {number}: not a JSON object with the keys "
                                  f"{', '.join(COLUMNS)}")
        records.append({**{c: record.get(c, NULL) for c in COLUMNS}, "row": number})
    frame = pd.DataFrame(records, columns=[*COLUMNS, "row"], dtype=object)
    return frame.assign(row=frame.row.astype("int64"))


def is_label(value) -> bool:
    """0 or 1 as an integer: not a bool, a float or a string."""
    return (isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
            and value in (0, 1))


def review_schema(params: ValidateParams) -> pa.DataFrameSchema:
    """The validate stage's expectations on one review, for values of any type."""
    def length_ok(text) -> bool:
        return params.min_words <= len(str(text).split()) <= params.max_words

    return pa.DataFrameSchema({
        "text": pa.Column(object, [
            pa.Check(lambda v: isinstance(v, str), element_wise=True, name=TEXT_STRING),
            pa.Check(lambda v: not isinstance(v, str) or v.strip() != "", element_wise=True,
                     name=NOT_EMPTY),
            pa.Check(lambda v: not isinstance(v, str) or not v.strip() or length_ok(v),
                     element_wise=True, name=LENGTH),
        ]),
        "label": pa.Column(object, pa.Check(is_label, element_wise=True, name=LABELS)),
    })


def row_keys(batch: pd.DataFrame) -> pd.Series:
    return batch.source + " row " + batch.row.astype(str)


def check_rows(batch: pd.DataFrame, params: ValidateParams) -> None:
    shown = {LENGTH: lambda rows: [f"{n} words" for n in word_counts(rows.text.astype(str))]}
    found = failures(review_schema(params), batch[list(COLUMNS)].astype(object),
                     row_keys(batch), batch, shown)
    if found:
        raise ValidationError("new reviews fail validation: " + "; ".join(found))


def check_against(batch: pd.DataFrame, reviews: pd.DataFrame, by: str) -> pd.DataFrame:
    """Refuse copies of test reviews and copies that disagree on the label; return the batch
    with its key and whether each row copies a training review or an earlier new one."""
    key_of = (lambda t: t) if by == "exact" else normalize
    batch = batch.assign(key=key_of(batch.text))
    keys = reviews.assign(key=key_of(reviews.text))
    test = keys[keys.split == "test"]
    leaked = batch[batch.key.isin(set(test.key))]
    if len(leaked):
        first = test.drop_duplicates("key").set_index("key")
        named = row_keys(leaked) + " (= test/" + leaked.key.map(
            lambda k: f"{'pos' if first.label[k] else 'neg'}/{first.id[k]}") + ")"
        raise ValidationError(f"expectation '{NOT_TEST}' failed in {rows_named(named)}: the "
                              "test set must stay unseen; remove these rows from the batch")
    train = keys[keys.split == "train"]
    labels = pd.concat([train[["key", "label"]], batch[["key", "label"]]])
    disagree = batch.key.map(labels.groupby("key").label.nunique()) > 1
    if disagree.any():
        raise ValidationError(f"expectation '{COPIES_AGREE}' failed in "
                              f"{rows_named(row_keys(batch[disagree]))}: a copy of a training "
                              "review or of another new review has the other label")
    return batch.assign(copies_training=batch.key.isin(set(train.key)),
                        repeated=batch.key.duplicated())


def training_vocabulary(texts: pd.Series, size: int) -> set[str]:
    """The `size` - 2 most frequent words of `texts` (ids 0 and 1 are padding and OOV), as
    prepare's vocabulary counts them."""
    return {word for word, _ in Counter(
        word for words in tokenized(texts.tolist()) for word in words).most_common(size - 2)}


def oov_rate(texts: pd.Series, vocabulary: set[str]) -> float:
    words = [word for words in tokenized(texts.tolist()) for word in words]
    return round(sum(word not in vocabulary for word in words) / max(len(words), 1), 4)


def drift(new: pd.DataFrame, reviews: pd.DataFrame, params: Params) -> dict:
    """The accepted reviews against the training split: label balance, length, vocabulary."""
    train, test = reviews[reviews.split == "train"], reviews[reviews.split == "test"]
    positives, share = int(new.label.sum()), float(train.label.mean())
    labels = stats.binomtest(positives, len(new), share)
    new_words, train_words = word_counts(new.text), word_counts(train.text)
    lengths = stats.ks_2samp(new_words, train_words)
    vocabulary = training_vocabulary(train.text, params.prepare.vocab_size)
    figures = {
        "label": {"positive_share": round(positives / len(new), 4),
                  "training_positive_share": round(share, 4),
                  "p_value": round(float(labels.pvalue), 4)},
        "length": {"median_words": float(new_words.median()),
                   "training_median_words": float(train_words.median()),
                   "ks_statistic": round(float(lengths.statistic), 4),
                   "p_value": round(float(lengths.pvalue), 4)},
        "oov": {"rate": oov_rate(new.text, vocabulary),
                "test_rate": oov_rate(test.text, vocabulary)},
    }
    alpha = params.incoming.drift_p_value
    figures["drifted"] = [name for name in ("label", "length") if figures[name]["p_value"] < alpha]
    return figures


def intake(batch: pd.DataFrame, reviews: pd.DataFrame, params: Params
           ) -> tuple[pd.DataFrame, dict]:
    """(the accepted reviews, the intake report); raises ValidationError on a violated
    expectation."""
    check_rows(batch, params.validate)
    checked = check_against(batch, reviews, params.validate.duplicates_by)
    dropped = (checked.copies_training | checked.repeated) & params.validate.drop_duplicates
    accepted = checked[~dropped].reset_index(drop=True)
    accepted = accepted.assign(label=accepted.label.astype("int8"))[
        ["text", "label", "source", "row"]]
    report = {
        "files": int(batch.source.nunique()), "received": len(batch), "accepted": len(accepted),
        "copies_of_training_reviews": int(checked.copies_training.sum()),
        "repeats_in_batch": int((checked.repeated & ~checked.copies_training).sum()),
        "dropped": int(dropped.sum()), "use": params.incoming.use,
        "drift": drift(accepted, reviews, params) if len(accepted) else None,
    }
    return accepted, report


def empty_batch() -> pd.DataFrame:
    return pd.DataFrame({"text": pd.Series(dtype=object), "label": pd.Series(dtype=object),
                         "source": pd.Series(dtype=str), "row": pd.Series(dtype="int64")})


def log_to_mlflow(report: dict, params: IncomingParams) -> None:
    metrics = {k: v for k, v in report.items() if isinstance(v, int)}
    for name, figures in (report["drift"] or {}).items():
        if isinstance(figures, dict):
            metrics.update({f"drift.{name}.{k}": v for k, v in figures.items()})
    tracking.setup()
    tags = {"stage": "intake", "data_hash": tracking.data_hash(INCOMING_DIR)}
    with mlflow.start_run(run_name="intake", tags=tags):
        mlflow.log_params({f"incoming.{k}": v for k, v in vars(params).items()})
        mlflow.log_metrics(metrics)
        mlflow.log_dict(report, "incoming.json")


def main() -> None:
    params = load_params()
    if not VALIDATED_PATH.exists():
        raise ValidationError(f"{VALIDATED_PATH} not found: run `dvc repro validate` first")
    files = batch_files()
    batch = pd.concat([read_batch(f) for f in files], ignore_index=True) if files else None
    if batch is None or batch.empty:
        batch = empty_batch()
    accepted, report = intake(batch, pd.read_parquet(VALIDATED_PATH), params)
    log_to_mlflow(report, params.incoming)
    write_parquet(accepted, INCOMING_PATH)
    write_json(INCOMING_METRICS_PATH, report)
    if not len(batch):
        log.info("no new reviews in %s", INCOMING_DIR)
        return
    log.info("%d new reviews in %d file(s): %d accepted (%d copies of training reviews, %d "
             "repeats%s); incoming.use: %s", report["received"], report["files"],
             report["accepted"], report["copies_of_training_reviews"],
             report["repeats_in_batch"], ", dropped" if report["dropped"] else ", kept",
             params.incoming.use)
    if report["drift"] and report["drift"]["drifted"]:
        log.warning("the new reviews drift from the training split in: %s (p < %s); see %s",
                    ", ".join(report["drift"]["drifted"]), params.incoming.drift_p_value,
                    INCOMING_METRICS_PATH)


if __name__ == "__main__":
    stage_app(__doc__, main)()
