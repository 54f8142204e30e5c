"""Test-only (tests/e2e/test_stage_kills.py): SIGKILL a pipeline stage after its N-th output lands.

Python imports this at start-up from PYTHONPATH in every process the test's `dvc repro` starts.
It acts only in the process whose command line is KILL_STAGE_CMD (a stage's `cmd` from dvc.lock),
never in dvc itself, and counts only renames onto the outputs listed in KILL_OUTS (JSON): the
process kills itself right after the KILL_AFTER_RENAMES-th one, or before the first if that is 0.
"""

import json
import os
import signal
import sys
from pathlib import Path

if os.environ.get("KILL_STAGE_CMD"):
    _outputs = [Path(p) for p in json.loads(os.environ["KILL_OUTS"])]
    _after = int(os.environ["KILL_AFTER_RENAMES"])
    _replace = os.replace
    _landed = 0

    def _is_the_stage() -> bool:  # sys.orig_argv: the command line as typed, `-m` included
        return sys.orig_argv[1:] == os.environ["KILL_STAGE_CMD"].split()[1:]

    def _lands_on_an_output(dst) -> bool:
        dst = Path(dst).resolve()
        return any(dst == out or out in dst.parents for out in _outputs)

    def _die() -> None:
        Path(os.environ["KILL_MARKER"]).write_text(f"{_landed} rename(s)\n")
        os.kill(os.getpid(), signal.SIGKILL)

    def _replace_then_maybe_die(src, dst, *args, **kwargs):
        global _landed
        counted = _is_the_stage() and _lands_on_an_output(dst)
        if counted and _after == 0:
            _die()
        _replace(src, dst, *args, **kwargs)
        if counted:
            _landed += 1
            if _landed == _after:
                _die()

    os.replace = _replace_then_maybe_die
