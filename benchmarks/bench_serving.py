"""`mlops serve` under load on loopback: online features for 1 entity and predictions for 1 record.

Setup: a fresh SQLite registry in a temporary folder; features ``tenure`` and ``spend`` over
10,000 integer entities (seeded numpy), materialised to staging; a LogisticRegression on them
registered and promoted to staging; a serve token. The server is ``mlops serve --env staging``
in its own process (uvicorn, one worker); the client is ``tests/http_load.py`` (asyncio, raw
HTTP/1.1 keep-alive connections) in this process.

Timed, per case (``GET /features/tenure/{entity}`` with random entities, and ``POST
/models/churn/predict`` with one random record): ``--requests`` requests (default 10,000) over
``--concurrency`` connections (default 16), then 2,000 more over 1 connection (latency without
queueing). p50/p99 of the per-request wall time seen by the client, and throughput.
Checked: 0 errors; after the server is stopped (SIGINT, which flushes the request log), the
registry's served_requests rows == requests sent.

Targets (issue 7): features 1 entity <= 1 ms p50 and <= 3 ms p99; prediction 1 record <= 2 ms p50.

Run: ``.venv/bin/python benchmarks/bench_serving.py`` (from the project root).
"""

import argparse
import asyncio
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import http_load  # noqa: E402

N_ENTITIES = 10_000
SEED = 20261126
SEQUENTIAL_REQUESTS = 2_000
TARGETS_MS = {"features": (1.0, 3.0), "predict": (2.0, None)}
COMMAND = ".venv/bin/python benchmarks/bench_serving.py"


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _setup(folder):
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import mlops_jupyter as mlops

    url = f"sqlite:///{folder / 'registry.db'}"
    mlops.connect(url, artifacts=str(folder / "artifacts"))
    rng = np.random.default_rng(SEED)
    table = pd.DataFrame({
        "customer": np.arange(N_ENTITIES),
        "at": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 86_400 * 30, N_ENTITIES), "s"),
        "tenure": rng.gamma(3.0, 8.0, N_ENTITIES).round(1),
        "spend": rng.normal(100.0, 20.0, N_ENTITIES).round(2),
    })
    for name in ("tenure", "spend"):
        mlops.register_feature(name, table[["customer", "at", name]], entity="customer", timestamp="at")
    mlops.materialize(["tenure", "spend"], env="staging")
    model = LogisticRegression().fit(table[["tenure", "spend"]], (table["tenure"] < 24).astype(int))
    mlops.register_model(model, "churn", input_example=table[["tenure", "spend"]].head(2))
    mlops.promote("churn", 1, "staging")
    token = mlops.create_token("staging", description="bench_serving")["token"]
    mlops.disconnect()
    return url, table, token, rng


def _wait_ready(port, process):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as response:
                if json.load(response)["ready"]:
                    return
        except OSError:
            time.sleep(0.1)
    sys.exit("the server did not become ready within 60 s")


def _summary(result):
    latencies = result["latencies"]
    return {
        "requests": len(latencies),
        "errors": result["errors"],
        "p50_ms": http_load.percentile(latencies, 0.50) * 1000,
        "p99_ms": http_load.percentile(latencies, 0.99) * 1000,
        "per_second": len(latencies) / result["seconds"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    url, table, token, rng = _setup(folder)
    port = _free_port()
    host = f"127.0.0.1:{port}"
    entities = rng.integers(0, N_ENTITIES, 1000).tolist()
    cases = {
        "features": [http_load.request_bytes("GET", f"/features/tenure/{e}", None, token, host) for e in entities],
        "predict": [
            http_load.request_bytes(
                "POST", "/models/churn/predict",
                json.dumps({"records": [{"tenure": float(table.at[e, "tenure"]),
                                         "spend": float(table.at[e, "spend"])}]}).encode(),
                token, host)
            for e in entities
        ],
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "mlops_jupyter.cli", "serve", "--registry", url, "--env", "staging",
         "--port", str(port)],
        cwd=ROOT, stderr=subprocess.DEVNULL,
    )
    results, sent = {}, 0
    try:
        _wait_ready(port, server)
        for case, payloads in cases.items():
            for concurrency, requests in ((args.concurrency, args.requests), (1, SEQUENTIAL_REQUESTS)):
                asyncio.run(http_load.load("127.0.0.1", port, payloads, requests=200, concurrency=concurrency))
                result = asyncio.run(http_load.load("127.0.0.1", port, payloads, requests=requests,
                                                    concurrency=concurrency))
                sent += requests + 200
                results[(case, concurrency)] = _summary(result)
    finally:
        server.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown: the request log is flushed
        server.wait(60)

    import mlops_jupyter as mlops

    mlops.connect(url, artifacts=str(folder / "artifacts"))
    recorded = len(mlops.served_requests(env="staging"))
    print(f"{'case':<10} {'conc':>4} {'requests':>8} {'errors':>6} {'p50 ms':>7} {'p99 ms':>7} {'req/s':>7}")
    for (case, concurrency), row in results.items():
        print(f"{case:<10} {concurrency:>4} {row['requests']:>8} {row['errors']:>6} {row['p50_ms']:>7.2f} "
              f"{row['p99_ms']:>7.2f} {row['per_second']:>7.0f}")
    print(f"request log: {recorded} rows recorded for {sent} requests sent (warm-up included)")
    for case, (p50, p99) in TARGETS_MS.items():
        print(f"target {case}: p50 <= {p50} ms" + (f", p99 <= {p99} ms" if p99 else ""))
    failed = recorded != sent or any(row["errors"] for row in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
