"""`imdb`: the project's command line. The pipeline itself runs through `dvc repro`."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pipeline import UserError
from pipeline import retrain as retraining
from pipeline.reporting import behavior as behavioral

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Score movie reviews with the trained models, and retrain them.")


class Format(StrEnum):
    table = "table"
    jsonl = "jsonl"


# TensorFlow's C++ log lines (absl: "I0000 00:00:17... port.cc:153] oneDNN custom operations
# are on ...") and absl's notice that it logs to stderr before InitializeLog.
NATIVE_LOG_LINE = re.compile(rb"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\]"
                             rb"|WARNING: All log messages before absl::InitializeLog\(\))")


@app.callback()
def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@contextmanager
def tensorflow_logs(verbose: bool) -> Iterator[None]:
    """Quiet: TensorFlow's own log lines on the process's stderr are dropped, the rest passes.

    TF_CPP_MIN_LOG_LEVEL does not silence the lines TensorFlow's libraries print while they
    load (the oneDNN notice), so while this block runs, file descriptor 2 goes to a temporary
    file, and what was written there comes back afterwards without TensorFlow's lines.
    Verbose: every TensorFlow and INFO log line is shown.
    """
    previous = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
    try:
        if verbose:
            logging.getLogger().setLevel(logging.INFO)
            yield
        else:
            with _native_stderr_filtered():
                yield
    finally:
        _restore_env("TF_CPP_MIN_LOG_LEVEL", previous)


@contextmanager
def _native_stderr_filtered() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured if not NATIVE_LOG_LINE.match(line)]
            os.write(2, b"".join(kept))


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@app.command()
def predict(
    reviews: Annotated[list[str] | None, typer.Argument(
        help="Review texts. Without any, and without --file, reviews are read from stdin, "
             "one per line.")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", "-f", help="A .csv or .jsonl file with a text column, or a text file with "
                             "one review per line.")] = None,
    column: Annotated[str | None, typer.Option(
        help="Text column in --file (default: 'review', else 'text').")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="MLflow model URI (models:/..., runs:/...) or an architecture "
                              "name such as gru. Default: the champion, "
                              "models:/imdb-sentiment@champion.")] = None,
    output: Annotated[Format, typer.Option(
        "--format", help="table for people, jsonl for scripts.")] = Format.table,
    threshold: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Probability at or above which a review is positive.")] = 0.5,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Also print TensorFlow's start-up and log lines, and INFO "
                                "logs; hidden by default.")] = False,
) -> None:
    """Print the label and P(positive) for each review.

    A blank review, or a null or number in a .jsonl file, is refused naming its row (from 0).
    """
    try:
        with tensorflow_logs(verbose):
            from pipeline.serving import predict as predicting  # TensorFlow: only for this command

            texts = predicting.gather(reviews or [], file, column)
            scorer = predicting.load_scorer(model or predicting.DEFAULT_MODEL)
            table = predicting.score(texts, scorer, threshold)
    except UserError as err:  # InvalidReview, a bad review, is one too
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(predicting.render(table, output.value))


@app.command()
def retrain(
    base: Annotated[str, typer.Option(
        help="Git revision whose committed metrics this run is compared with.")] = "main",
    architecture: Annotated[list[str] | None, typer.Option(
        help="Run only this architecture's stages (repeatable), and push them with DVC's run "
             "cache: one job of a fan-out. A later `imdb retrain` without it restores them "
             "from the run cache and runs the report and the promotion.")] = None,
    list_architectures: Annotated[bool, typer.Option(
        "--list-architectures",
        help="Print params.yaml's architectures as a JSON list (the fan-out's job matrix) "
             "and exit.")] = False,
) -> None:
    """dvc pull, dvc repro, dvc push; then report the metrics diff and the champion decision.

    What the scheduled workflow runs, on one machine or fanned out over several
    (docs/operations.md#fanning-out). The summary is printed, and appended to
    $GITHUB_STEP_SUMMARY when that is set.
    """
    try:
        if list_architectures:
            typer.echo(json.dumps(retraining.architectures()))
            return
        if architecture:
            run = retraining.retrain_architectures(architecture)
            retraining.publish(retraining.architectures_summary(run))
            return
        outcome = retraining.retrain(base)
    except UserError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    retraining.publish(retraining.summary_markdown(outcome))


app.command("behavior", help=behavioral.HELP)(behavioral.cli)


if __name__ == "__main__":
    sys.exit(app())
