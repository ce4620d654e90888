"""Figure 3: creating runs, each with 3 params and 3 metrics, ours against MLflow.

Each run: start it, log 3 params in one call, log 3 metrics in one call, end it (``with``
block on both sides). Ours creates N runs (10,000 by default); MLflow, at about 20 ms a run,
creates 300; the figures compared are the per-run costs. Chunks of runs alternate between
the sides (a chunk of ours, a chunk of MLflow, ...), each timed in its worker.
"""

import time

import _peer

OURS_RUNS = 10_000
PEER_RUNS = 300
CHUNKS = 10
TARGET_TOTAL_S = 2.0
run_values = _peer.run_values


class Ours:
    def setup(self, url, artifacts):
        import mlops_jupyter as mlops

        self.mlops = mlops
        mlops.connect(url, artifacts=artifacts)
        mlops.set_experiment("create-runs-bench")
        self.create(5, 10**9)  # warm-up: first statements compiled, caches filled

    def create(self, n, first, code=None):
        mlops = self.mlops
        options = {} if code is None else {"code": code}
        started = time.perf_counter()
        for index in range(first, first + n):
            params, metrics = run_values(index)
            with mlops.start_run(**options):
                mlops.log_params(params)
                mlops.log_metrics(metrics)
        return time.perf_counter() - started

    def check(self):
        counts = self.mlops.registry_counts()
        return {"runs": counts["runs"], "params": counts["params"], "metrics": counts["metrics"]}

    def script_size(self):
        from mlops_jupyter.tracking.capture import script_source

        path, code = script_source()
        return {"path": path, "bytes": len(code.encode()) if code else 0}


class Peer:
    def setup(self, url, artifacts):
        self.mlflow, self.experiment = _peer.open_mlflow(url, artifacts, "create-runs-bench")
        self.create(5, 10**9)

    def create(self, n, first):
        mlflow = self.mlflow
        started = time.perf_counter()
        for index in range(first, first + n):
            params, metrics = run_values(index)
            with mlflow.start_run(experiment_id=self.experiment):
                mlflow.log_params(params)
                mlflow.log_metrics(metrics)
        return time.perf_counter() - started

    def check(self):
        runs = self.mlflow.search_runs([self.experiment], max_results=50_000, output_format="list")
        return {"runs": len(runs)}


def main():
    args = _peer.parse_args(__doc__.splitlines()[0])
    ours_total, peer_total, chunks = (500, 20, 2) if args.quick else (OURS_RUNS, PEER_RUNS, CHUNKS)
    seconds = {"ours": [], "mlflow": []}
    with _peer.scratch_dir() as scratch, _peer.sides(__file__, peer=not args.no_peer, scratch=scratch) as (ours, peer):
        ours.call("setup", url=_peer.sqlite_url(scratch / "ours.db"), artifacts=str(scratch / "ours-artifacts"))
        if peer:
            peer.call("setup", url=_peer.sqlite_url(scratch / "mlflow.db"), artifacts=str(scratch / "mlflow-artifacts"))
        for index in range(chunks):
            pair = [("ours", ours, ours_total // chunks)] + ([("mlflow", peer, peer_total // chunks)] if peer else [])
            for side, worker, n in pair if index % 2 == 0 else reversed(pair):
                seconds[side].append(worker.call("create", n=n, first=index * n))
            print(f"[create_runs] chunk {index + 1}/{chunks} ({100 * (index + 1) // chunks}%): ours "
                  f"{ours_total // chunks} runs in {seconds['ours'][-1]:.2f} s"
                  + (f", MLflow {peer_total // chunks} runs in {seconds['mlflow'][-1]:.2f} s" if peer else ""),
                  flush=True)
        # For information: the same runs without a script's source stored in each (as from a notebook).
        no_code_n = ours_total // 5
        no_code_s = ours.call("create", n=no_code_n, first=ours_total, code="")
        script = ours.call("script_size")
        counts = ours.call("check")
        if counts["runs"] != ours_total + no_code_n + 5 or counts["params"] != 3 * counts["runs"]:
            raise SystemExit(f"ours recorded {counts}, expected {ours_total + no_code_n + 5} runs with 3 params each")
        if peer and peer.call("check")["runs"] != peer_total + 5:
            raise SystemExit("MLflow did not record every run")

    ours_per_run = _peer.median(seconds["ours"]) / (ours_total // chunks) * 1000
    peer_per_run = _peer.median(seconds["mlflow"]) / (peer_total // chunks) * 1000 if peer else None
    ours_sum = sum(seconds["ours"])
    rows = [
        _peer.row(f"{ours_total:,} runs, total (ours measured; MLflow extrapolated from its per-run cost)",
                  ours_sum * 1000, peer_per_run * ours_total if peer else None,
                  target=f"≤ {TARGET_TOTAL_S:g} s for 10,000" if ours_total == OURS_RUNS else None,
                  limit=TARGET_TOTAL_S * 1000 if ours_total == OURS_RUNS else None),
        _peer.row("one run with 3 params and 3 metrics (median of chunks)", ours_per_run, peer_per_run),
        _peer.row("runs per second", 1000 / ours_per_run, 1000 / peer_per_run if peer else None, unit="runs/s",
                  higher_is_better=True),
        _peer.row(f"one run, ours started with `code=''` ({no_code_n:,} runs): no script source stored",
                  no_code_s / no_code_n * 1000, peer_per_run, note="for information"),
    ]
    notes = [
        f"Ours: {ours_total:,} runs in {chunks} chunks of {ours_total // chunks:,}; MLflow: {peer_total:,} runs in "
        f"{chunks} chunks of {peer_total // chunks} (fewer, at its cost per run), chunks alternating; "
        "the per-run figures compare the two, and MLflow's total for 10,000 is that per-run cost × 10,000.",
        "Ours per chunk (s): " + ", ".join(f"{s:.2f}" for s in seconds["ours"])
        + ("; MLflow per chunk (s): " + ", ".join(f"{s:.2f}" for s in seconds["mlflow"]) if peer else ""),
        "Each run on both sides: start, log 3 params (one call), log 3 metrics (one call), end. Ours also records the "
        "provenance it always records: git commit, imported packages, owner process and, run from a script (here the "
        f"worker script, {script['bytes']:,} bytes), that script's source in every run; the last row starts runs "
        "with `code=''` instead, as a notebook without the `%%mlops` magic records no source.",
    ]
    _peer.finish(args, 3, "Creating runs with 3 params and 3 metrics", rows, notes)


if __name__ == "__main__":
    main()
