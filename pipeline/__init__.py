"""IMDB sentiment pipeline: one module per DVC stage, run as `python -m pipeline.<stage>`."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow C++ start-up chatter

# XLA on CPU hands each matrix product to YNNPACK, which splits even a recurrent step's tiny
# products across threads. On 2 cores a GRU epoch then took 22 s or 38-41 s by chance, and with
# XLA's own products 22 s every time (docs/design.md#epochs-at-half-speed).
# A user's own setting wins.
YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type="
if "xla_cpu_experimental_ynn_fusion_type" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {YNN_OFF}".strip()


class UserError(Exception):
    """Bad input or configuration: reported as one clear line, without a traceback."""


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


def run_architecture_stage(module: str, main: Callable[[str], None],
                           summary: Callable[[], None] | None = None) -> None:
    """`python -m pipeline.<module> <architecture>`, or `... summary` for a stage that has one."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: python -m pipeline.{module} <architecture>"
                 + (" | summary" if summary else ""))
    target = sys.argv[1]
    run_stage(summary if summary and target == "summary" else lambda: main(target))
