"""How a stage runs from the command line: `python -m pipeline.<stage> [architecture]`, a Typer
command whose `--help` is the stage module's docstring (what it reads and writes).

A UserError, a params error, or a remote MLflow tracking server that went away mid-run is
logged as one line and exits 1, without a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import typer

from pipeline import UserError

ARCHITECTURE_HELP = "A name from params.yaml's `architectures` (for the lessons: its lists)."


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(): log to stderr and turn a UserError, or a remote MLflow tracking
    server that went away mid-run, into a one-line error, exit 1."""
    from pipeline.core.config import ParamsError

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        main()
    except (UserError, ParamsError) as err:
        logging.getLogger("pipeline").error("%s", err)
        sys.exit(1)
    except Exception as err:
        if "mlflow" not in sys.modules:  # tracking imports mlflow: only check where it is used
            raise
        from pipeline.core import tracking

        message = tracking.lost_server_message(err)
        if message is None:
            raise
        logging.getLogger("pipeline").error("%s", message)
        sys.exit(1)


def help_text(doc: str | None) -> str:
    """A module docstring as `--help` shows it: each paragraph one line, which the terminal
    wraps; indented lines (command examples) kept as they are."""
    paragraphs = (doc or "").strip().split("\n\n")
    return "\n\n".join(paragraph if paragraph.startswith("    ") else " ".join(paragraph.split())
                        for paragraph in paragraphs)


def stage_app(doc: str | None, main: Callable[[], None]) -> typer.Typer:
    """A Typer app with one command, no arguments, that runs `main` as a stage."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.command(help=help_text(doc))
    def stage() -> None:
        run_stage(main)

    return app


def architecture_stage_app(doc: str | None, main: Callable[[str], None],
                           summary: Callable[[], None] | None = None,
                           target_help: str = ARCHITECTURE_HELP) -> typer.Typer:
    """`... <architecture>` runs `main(architecture)`; for a stage with a summary, `... summary`
    runs `summary()`. `target_help` describes the argument (another stage's foreach names)."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    target_help += " Or `summary`: the table and chart over all of them." if summary else ""

    @app.command(help=help_text(doc))
    def stage(architecture: str = typer.Argument(..., help=target_help)) -> None:
        run_stage(summary if summary and architecture == "summary"
                  else lambda: main(architecture))

    return app
