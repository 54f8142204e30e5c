"""A stage killed with SIGKILL mid-write (no `finally`, no cleanup) leaves no output that looks
complete: a new output does not exist, an old one is intact. What atomic_path promises."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test SIGKILLs a writer process

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys, time
from pathlib import Path
from pipeline.core.io import atomic_path

target, kind = Path(sys.argv[1]), sys.argv[2]
with atomic_path(target) as tmp:
    if kind == "dir":
        tmp.mkdir()
        (tmp / "model.keras").write_bytes(b"new" * 1000)
        part = open(tmp / "metrics.json", "w")
    else:
        part = open(tmp, "w")
    part.write('{"accuracy": 0.')
    part.flush()
    print("half-written", flush=True)
    time.sleep(300)
"""


@pytest.mark.parametrize("kind", ["file", "dir"])
@pytest.mark.parametrize("existed", [False, True])
def test_sigkill_mid_write_leaves_the_old_output_or_none(tmp_path, kind, existed):
    target = tmp_path / "out" / ("metrics.json" if kind == "file" else "model")
    if existed:
        target.parent.mkdir()
        if kind == "dir":
            target.mkdir()
            (target / "model.keras").write_bytes(b"old")
        else:
            target.write_text('{"accuracy": 0.5}')
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target), kind], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "half-written"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    if not existed:
        assert not target.exists()
    elif kind == "dir":
        assert sorted(p.name for p in target.iterdir()) == ["model.keras"]
        assert (target / "model.keras").read_bytes() == b"old"
    else:
        assert target.read_text() == '{"accuracy": 0.5}'
    # The half-written copy is only in a hidden temporary folder beside the target.
    leftovers = [p for p in target.parent.iterdir() if p.name != target.name]
    assert [p.name.startswith(f".{target.name}.") for p in leftovers] == [True]
