"""A real MLflow tracking server that goes away while the train stage runs: the stage stops with
one clear line and writes nothing; once the server is back, a rerun completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import MLFLOW, PROJECT_ROOT, free_port, keyword_data, start
from mlflow.tracking import MlflowClient

from pipeline.core.config import read_params

pytestmark = pytest.mark.slow  # `mlflow server`, killed and restarted; the train stage twice

ARCH = "gru"
OUTPUTS = [Path("models", ARCH), Path("metrics/train", f"{ARCH}.json"),
           Path("timings/train", f"{ARCH}.json"), Path("plots/history", f"{ARCH}.csv")]


class TrackingServer:
    """`mlflow server` on 127.0.0.1 in its own process group, over one SQLite store."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.process = start(
            [MLFLOW, "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}",
             "--artifacts-destination", str(self.root / "artifacts")],
            dict(os.environ), self.port, self.root / f"server-{self.starts}.log",
            new_session=True)

    def kill(self) -> None:  # the server and its uvicorn worker, as a crash or OOM would
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "server"
    root.mkdir()
    server = TrackingServer(root)
    server.start()
    yield server
    if server.process.poll() is None:
        server.kill()


@pytest.fixture
def project(tmp_path):
    """params.yaml sized so that training lasts a few seconds, and data/prepared."""
    root = tmp_path / "project"
    prepared = root / "data/prepared"
    prepared.mkdir(parents=True)
    for split, (n, seed) in {"train": (768, 0), "val": (128, 1)}.items():
        x, y = keyword_data(n, seed)
        np.savez(prepared / f"{split}.npz", x=x, y=y, id=np.arange(n))
    params = read_params(PROJECT_ROOT / "params.small.yaml")
    params["prepare"].update(vocab_size=20, maxlen=16)
    params["lessons"].update(maxlens=[8, 16], gradient_timesteps=16)
    params["train"].update(max_epochs=8, patience=8, bucket_width=4, jit_compile=False)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def train(root: Path, uri: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "MLFLOW_TRACKING_URI": uri}
    env = {k: v for k, v in env.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    return subprocess.Popen([sys.executable, "-m", "pipeline.train", ARCH], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_a_tracking_server_lost_mid_run_stops_the_stage_cleanly_and_a_rerun_completes(
        project, server):
    client = MlflowClient(server.uri)
    stage = train(project, server.uri)
    deadline = time.monotonic() + 120
    runs = []
    while not runs and time.monotonic() < deadline and stage.poll() is None:
        time.sleep(0.3)
        experiment = client.get_experiment_by_name("imdb-sentiment")
        runs = experiment and client.search_runs([experiment.experiment_id])
    assert runs and stage.poll() is None, stage.communicate()[1]
    lost_run = runs[0].info.run_id

    server.kill()
    killed_at = time.monotonic()
    _, stderr = stage.communicate(timeout=120)
    elapsed = time.monotonic() - killed_at
    assert stage.returncode == 1, stderr
    assert elapsed < 90, f"took {elapsed:.0f} s to fail"
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert " ERROR " in last and f"lost the MLflow tracking server at {server.uri}" in last
    assert "connection refused" in last and "rerun `dvc repro`" in last
    assert not [path for path in OUTPUTS if (project / path).exists()]

    server.start()  # same port, same store
    rerun = train(project, server.uri)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert all((project / path).exists() for path in OUTPUTS)
    assert client.get_run(lost_run).info.status == "KILLED"  # by the rerun's setup()
    finished = client.search_runs([runs[0].info.experiment_id], "attributes.status = 'FINISHED'")
    assert [run.info.run_name for run in finished] == [ARCH]
