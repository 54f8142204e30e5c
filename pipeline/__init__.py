"""IMDB sentiment pipeline: one module per DVC stage, run as `python -m pipeline.<stage>` (a Typer
command: pipeline/core/stage.py), beside the library folders core/, serving/ and reporting/."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow C++ start-up chatter

# XLA on CPU hands each matrix product to YNNPACK, which splits even a recurrent step's tiny
# products across threads and made epoch times vary by chance; XLA's own products do not
# (docs/design.md#epochs-at-half-speed). A user's own setting wins.
YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type="
if "xla_cpu_experimental_ynn_fusion_type" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {YNN_OFF}".strip()


class UserError(Exception):
    """Bad input or configuration: reported as one clear line, without a traceback."""
