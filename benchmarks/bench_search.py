"""Figure 4: search the top 100 runs with a filter and a sort, at 10,000 and 100,000 runs.

Query on both sides: filter ``metrics.auc > 0.8 and params.model = 'rf'`` (about 10% of the
runs match), order by ``metrics.auc`` descending, first 100, returned as a pandas DataFrame (both
libraries' default). Searches alternate between the sides; medians after one warm-up search.

Populating: creating 100,000 runs through either API takes far too long (MLflow ≈ 50 ms a run
here), so each side creates its first run (run 0) through its normal API and the rest are
copies of that run's rows, with their own ids, names, times, params and metrics, bulk-inserted
with SQLAlchemy into that side's own tables: ours into ``runs``, ``params`` and ``metrics``
(whose trigger keeps ``latest_metrics``), MLflow's into ``runs``, ``tags``, ``params``,
``metrics`` and ``latest_metrics`` (it maintains that one in Python, so it is filled alike).
Both sides get the same values, and the script checks that both return the same top 100.
"""

import time

import _peer

SIZES = (10_000, 100_000)
REPETITIONS = 15
PEER_REPETITIONS_100K = 5  # MLflow's search takes seconds at 100k
CHUNK = 5_000
FILTER = "metrics.auc > 0.8 and params.model = 'rf'"
ORDER = "metrics.auc desc"
LIMIT = 100
TARGETS_MS = {10_000: 20, 100_000: 50}
MODELS = ("rf", "lr", "gb", "svm")
BASE_TIME = 1_700_000_000.0


def run_values(index):
    """Params and metrics of run ``index``: the same on both sides, auc spread over [0.5, 1)."""
    auc = 0.5 + (index * 2_654_435_761 % 1_000_003) / 2_000_006
    params = {"model": MODELS[index % 4], "lr": f"{0.001 * (1 + index % 10):g}", "depth": str(2 + index % 8)}
    metrics = {"auc": auc, "loss": 1.0 - auc + (index % 13) / 100, "acc": 0.4 + (index % 50) / 100}
    return params, metrics


def top_aucs(values):
    return [round(float(v), 9) for v in values]


class Ours:
    def setup(self, url, artifacts):
        import mlops_jupyter as mlops

        self.mlops = mlops
        self.registry = mlops.connect(url, artifacts=artifacts)
        mlops.set_experiment("search-bench")
        params, metrics = run_values(0)
        with mlops.start_run("run-0") as run:
            mlops.log_params(params)
            mlops.log_metrics(metrics, step=0)
        self.count = 1
        import sqlalchemy as sa
        from mlops_jupyter.registry.schema import runs

        with self.registry.store.engine.connect() as connection:
            self.template = dict(connection.execute(sa.select(runs).where(runs.c.id == run.id)).mappings().one())

    def populate(self, total):
        """Bulk-insert copies of run 0 up to ``total`` runs, a transaction per CHUNK runs."""
        import uuid

        import sqlalchemy as sa
        from mlops_jupyter.registry import database
        from mlops_jupyter.registry.schema import metrics, params, runs
        from mlops_jupyter.validation import numeric_or_none

        started, first = time.perf_counter(), self.count
        with self.registry.store.engine.connect() as connection:
            while self.count < total:
                end = min(self.count + CHUNK, total)
                run_rows, param_rows, metric_rows = [], [], []
                for index in range(self.count, end):
                    run_id = uuid.uuid4().hex
                    start = BASE_TIME + index
                    run_rows.append({**self.template, "id": run_id, "name": f"run-{index}", "start_time": start,
                                     "end_time": start + 1})
                    values, points = run_values(index)
                    param_rows += [{"run_id": run_id, "key": k, "value": v, "value_number": numeric_or_none(v)}
                                   for k, v in values.items()]
                    metric_rows += [{"run_id": run_id, "key": k, "value": v, "step": 0, "timestamp": start}
                                    for k, v in points.items()]
                with database.begin(connection, write=True):
                    connection.execute(sa.insert(runs), run_rows)
                    connection.execute(sa.insert(params), param_rows)
                    connection.execute(sa.insert(metrics), metric_rows)
                self.count = end
                _peer.progress("ours populate", self.count - first, total - first, started)
        return time.perf_counter() - started

    def search(self, output="pandas"):
        started = time.perf_counter()
        found = self.mlops.search_runs(FILTER, order_by=ORDER, limit=LIMIT, output=output)
        elapsed = (time.perf_counter() - started) * 1000
        aucs = found["metrics.auc"] if output == "pandas" else [r["metrics"]["auc"] for r in found]
        return {"ms": elapsed, "rows": len(found), "aucs": top_aucs(aucs)}

    def counts(self):
        counts = self.mlops.registry_counts()
        return {"runs": counts["runs"], "metrics": counts["metrics"]}


class Peer:
    def setup(self, url, artifacts):
        import logging
        from pathlib import Path

        import mlflow
        import sqlalchemy as sa

        logging.getLogger("mlflow").setLevel(logging.ERROR)
        self.mlflow = mlflow
        mlflow.set_tracking_uri(url)
        self.experiment = mlflow.create_experiment("search-bench", artifact_location=Path(artifacts).as_uri())
        params, metrics = run_values(0)
        with mlflow.start_run(experiment_id=self.experiment, run_name="run-0") as run:
            mlflow.log_params(params)
            mlflow.log_metrics(metrics, step=0)
        self.count = 1
        self.engine = sa.create_engine(url)
        names = ("runs", "tags", "params", "metrics", "latest_metrics")
        metadata = sa.MetaData()
        metadata.reflect(self.engine, only=names)  # (also reflects the tables these refer to)
        self.tables = {name: metadata.tables[name] for name in names}
        run_id = run.info.run_id
        with self.engine.connect() as connection:
            self.template = {
                name: [dict(r) for r in connection.execute(
                    sa.select(table).where(table.c.run_uuid == run_id)).mappings()]
                for name, table in self.tables.items()
            }

    def populate(self, total):
        """Bulk-insert copies of run 0's rows (all its tables) up to ``total`` runs."""
        import uuid

        import sqlalchemy as sa

        template = self.template
        (run_template,) = template["runs"]
        metric_template = template["metrics"][0]
        started, first = time.perf_counter(), self.count
        with self.engine.connect() as connection:
            while self.count < total:
                end = min(self.count + CHUNK, total)
                rows = {name: [] for name in template}
                for index in range(self.count, end):
                    run_id = uuid.uuid4().hex
                    name = f"run-{index}"
                    start = int((BASE_TIME + index) * 1000)
                    rows["runs"].append({**run_template, "run_uuid": run_id, "name": name, "start_time": start,
                                         "end_time": start + 1000})
                    rows["tags"] += [{**tag, "run_uuid": run_id, "value": name if tag["key"] == "mlflow.runName"
                                      else tag["value"]} for tag in template["tags"]]
                    values, points = run_values(index)
                    rows["params"] += [{**template["params"][0], "run_uuid": run_id, "key": k, "value": v}
                                       for k, v in values.items()]
                    for table in ("metrics", "latest_metrics"):
                        rows[table] += [{**metric_template, "run_uuid": run_id, "key": k, "value": v, "step": 0,
                                         "timestamp": start, "is_nan": False} for k, v in points.items()]
                with connection.begin():
                    for name in ("runs", "tags", "params", "metrics", "latest_metrics"):
                        if rows[name]:
                            connection.execute(sa.insert(self.tables[name]), rows[name])
                self.count = end
                _peer.progress("MLflow populate", self.count - first, total - first, started)
        return time.perf_counter() - started

    def search(self):
        started = time.perf_counter()
        found = self.mlflow.search_runs(experiment_ids=[self.experiment], filter_string=FILTER,
                                        order_by=["metrics.auc DESC"], max_results=LIMIT)
        elapsed = (time.perf_counter() - started) * 1000
        return {"ms": elapsed, "rows": len(found), "aucs": top_aucs(found["metrics.auc"])}

    def counts(self):
        import sqlalchemy as sa

        with self.engine.connect() as connection:
            return {"runs": connection.execute(sa.select(sa.func.count()).select_from(self.tables["runs"])).scalar()}


def measure(ours, peer, repetitions, peer_repetitions, size):
    """Alternate searches; check every answer against the first one of ours."""
    ours_cold, peer_cold = ours.call("search"), peer.call("search") if peer else None
    samples = {"ours": [], "ours_list": [], "mlflow": []}
    reference = ours_cold["aucs"]
    expected = sorted(reference, reverse=True)
    if reference != expected or len(reference) != LIMIT:
        raise SystemExit(f"ours returned {len(reference)} runs, not sorted by auc")
    for index in range(repetitions):
        calls = [("ours", lambda: ours.call("search")), ("ours_list", lambda: ours.call("search", output="list"))]
        if peer and index < peer_repetitions:
            calls.append(("mlflow", lambda: peer.call("search")))
        for side, call in calls if index % 2 == 0 else reversed(calls):
            result = call()
            if result["aucs"] != reference:
                raise SystemExit(f"{side} at {size:,} runs returned a different top {LIMIT} than ours")
            samples[side].append(result["ms"])
    print(f"[search] {size:,} runs: ours median {_peer.median(samples['ours']):.1f} ms"
          + (f", MLflow median {_peer.median(samples['mlflow']):.0f} ms" if peer else ""), flush=True)
    return samples, ours_cold["ms"], peer_cold["ms"] if peer else None


def main():
    args = _peer.parse_args(__doc__.splitlines()[0])
    sizes, repetitions, peer_repetitions_big = ((2_000, 5_000), 3, 2) if args.quick else (SIZES, REPETITIONS,
                                                                                           PEER_REPETITIONS_100K)
    rows, notes = [], []
    with _peer.scratch_dir() as scratch, _peer.sides(__file__, peer=not args.no_peer, scratch=scratch) as (ours, peer):
        ours.call("setup", url=_peer.sqlite_url(scratch / "ours.db"), artifacts=str(scratch / "ours-artifacts"))
        if peer:
            peer.call("setup", url=_peer.sqlite_url(scratch / "mlflow.db"), artifacts=str(scratch / "mlflow-artifacts"))
        for size in sizes:
            # Populating is not measured, so both sides populate at once.
            ours.send("populate", total=size)
            if peer:
                peer.send("populate", total=size)
            populate_s = {"ours": ours.receive()}
            if peer:
                populate_s["mlflow"] = peer.receive()
            counts = ours.call("counts")
            if counts != {"runs": size, "metrics": 3 * size}:
                raise SystemExit(f"ours holds {counts}, expected {size} runs")
            if peer and peer.call("counts")["runs"] != size:
                raise SystemExit(f"MLflow does not hold {size} runs")
            big = size == sizes[-1]
            samples, ours_cold, peer_cold = measure(ours, peer, repetitions, peer_repetitions_big if big else repetitions,
                                                    size)
            target = TARGETS_MS.get(size)
            rows += [
                _peer.row(f"search at {size:,} runs, DataFrame (median)", _peer.median(samples["ours"]),
                          _peer.median(samples["mlflow"]) if peer else None,
                          target=f"≤ {target} ms" if target else None, limit=target),
                _peer.row(f"search at {size:,} runs, " + ("first search in the process" if size == sizes[0]
                                                          else "first search after populating"), ours_cold, peer_cold),
                _peer.row(f"search at {size:,} runs, list of dicts (ours only)", _peer.median(samples["ours_list"]),
                          note="for information"),
            ]
            notes.append(f"{size:,} runs: populated in {populate_s['ours']:.1f} s ours"
                         + (f", {populate_s['mlflow']:.1f} s MLflow" if peer else "")
                         + f" (bulk, not measured); {len(samples['ours'])} searches ours, "
                         + f"{len(samples['mlflow'])} MLflow" + ("" if not peer else ", alternating")
                         + f"; both returned the same top {LIMIT}.")
    notes.insert(0, f"Query: `{FILTER}`, order by `{ORDER}`, limit {LIMIT}; ~10% of runs match, so the sort is over "
                 "~1,000 runs at 10k and ~10,000 at 100k.")
    notes.append("Medians exclude the first search at each size, reported on its own line (in the process, it "
                 "includes importing pandas and compiling the query).")
    _peer.finish(args, 4, "Search top 100 with a filter and a sort", rows, notes)


if __name__ == "__main__":
    main()
