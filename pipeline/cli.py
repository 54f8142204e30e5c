"""`imdb`: the project's command line. The pipeline itself runs through `dvc repro`."""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pipeline import UserError
from pipeline import retrain as retraining

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Score movie reviews with the trained models, and retrain them.")


class Format(StrEnum):
    table = "table"
    jsonl = "jsonl"


@app.callback()
def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


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
) -> None:
    """Print the label and P(positive) for each review."""
    from pipeline import predict as predicting  # TensorFlow: only load it for this command

    try:
        texts = predicting.gather(reviews or [], file, column)
        scorer = predicting.load_scorer(model or predicting.DEFAULT_MODEL)
        table = predicting.score(texts, scorer, threshold)
    except UserError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    blank = int((table.label == "unknown").sum())
    if blank:
        typer.echo(f"warning: {blank} blank review(s) not scored", err=True)
    typer.echo(predicting.render(table, output.value))


@app.command()
def retrain(
    base: Annotated[str, typer.Option(
        help="Git revision whose committed metrics this run is compared with.")] = "main",
) -> None:
    """dvc pull, dvc repro, dvc push; then report the metrics diff and the champion decision.

    What the scheduled workflow runs. The summary is printed, and appended to
    $GITHUB_STEP_SUMMARY when that is set.
    """
    try:
        outcome = retraining.retrain(base)
    except UserError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    retraining.publish(retraining.summary_markdown(outcome))


if __name__ == "__main__":
    sys.exit(app())
