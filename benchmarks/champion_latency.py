"""Champion latency and throughput, through pyfunc and through `mlflow models serve`.

    python benchmarks/champion_latency.py            # after `dvc repro`, from the project root

Prints a table and writes benchmarks/results/champion_latency.{csv,md}. Single-review latency
is measured over --requests calls; batch throughput scores all test reviews.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.core import tracking  # noqa: E402
from pipeline.core.paths import REVIEWS_PATH  # noqa: E402

RESULTS = Path("benchmarks/results")
SENTENCES = [
    "This movie is really bad . I do not like this movie because the direction was horrible .",
    "amazing",
    "such a horriblely bad cast",
]


def timings(call, reviews: list[str]) -> list[float]:
    seconds = []
    for review in reviews:
        started = time.perf_counter()
        call(review)
        seconds.append(time.perf_counter() - started)
    return seconds


def summary(kind: str, seconds: list[float], batch_seconds: float, batch_size: int) -> dict:
    return {"path": kind, "median_ms": round(1000 * statistics.median(seconds), 1),
            "p99_ms": round(1000 * float(np.percentile(seconds, 99)), 1),
            "batch_reviews_per_s": round(batch_size / batch_seconds, 0)}


def serve(model_uri: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri(),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri,
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(180):
        try:
            if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).ok:
                return server
        except requests.ConnectionError:
            time.sleep(1)
    server.terminate()
    raise SystemExit("the model server did not start within 3 minutes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/imdb-sentiment@champion")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--http-batch", type=int, default=1000)
    args = parser.parse_args()

    mlflow.set_tracking_uri(tracking.tracking_uri())
    reviews = pd.read_parquet(REVIEWS_PATH)
    test = reviews[reviews.split == "test"].text.tolist()
    singles = test[: args.requests]
    model = mlflow.pyfunc.load_model(args.model)

    def pyfunc_one(review: str):
        return model.predict(pd.DataFrame({"review": [review]}))

    pyfunc_one(singles[0])  # warm-up: first call traces the graph
    single = timings(pyfunc_one, singles)
    started = time.perf_counter()
    model.predict(pd.DataFrame({"review": test}))
    rows = [summary("pyfunc", single, time.perf_counter() - started, len(test))]
    answers = model.predict(pd.DataFrame({"review": SENTENCES})).probability.tolist()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve(args.model, port)
    url = f"http://127.0.0.1:{port}/invocations"
    try:
        def http_one(review: str):
            response = requests.post(url, json={"inputs": {"review": [review]}}, timeout=60)
            response.raise_for_status()

        http_one(singles[0])
        single = timings(http_one, singles)
        batch = test[: args.http_batch]
        started = time.perf_counter()
        response = requests.post(url, json={"inputs": {"review": batch}}, timeout=300)
        response.raise_for_status()
        rows.append(summary("http", single, time.perf_counter() - started, len(batch)))
    finally:
        server.terminate()
        server.wait(timeout=30)

    table = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "champion_latency.csv", index=False)
    lines = ["| path | median ms | p99 ms | batch reviews/s |", "|---|---:|---:|---:|"]
    lines += [f"| {r.path} | {r.median_ms} | {r.p99_ms} | {r.batch_reviews_per_s:.0f} |"
              for r in table.itertuples()]
    lines += ["", "| review | P(positive) |", "|---|---:|"]
    lines += [f"| {text} | {p:.4f} |" for text, p in zip(SENTENCES, answers, strict=True)]
    (RESULTS / "champion_latency.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
