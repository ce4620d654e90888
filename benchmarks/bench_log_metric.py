"""Figure 2: latency of one durable ``log_metric`` inside an active run, ours against MLflow.

Both on SQLite files in a temporary folder. The calls are timed one by one inside each side's
worker process, in alternating rounds (a round of ours, a round of MLflow, ...), after a
warm-up. Ours is then measured on PostgreSQL too (fsync-bound, for information) when the local
server answers, in a schema the script creates and drops.
"""

import secrets
import time

import _peer

ROUNDS = 10
OURS_PER_ROUND = 500  # 5,000 calls
PEER_PER_ROUND = 200  # 2,000 calls (20 ms each on a loaded machine: 40 s)
PG_CALLS = 3000
WARMUP = 50
TARGET_P50_MS = 0.1


class Ours:
    def setup(self, url, artifacts=None):
        import mlops_jupyter as mlops

        self.mlops = mlops
        mlops.connect(url, artifacts=artifacts)
        self.run = mlops.start_run("log-metric-bench")
        self.step = 0
        self.log(WARMUP)

    def log(self, n):
        mlops, clock = self.mlops, time.perf_counter_ns
        times = []
        for _ in range(n):
            step = self.step
            started = clock()
            mlops.log_metric("loss", 1.0 / (step + 1), step=step)
            times.append((clock() - started) / 1e6)
            self.step += 1
        return times

    def count(self):
        return len(self.mlops.get_metric_history(self.run, "loss"))

    def teardown(self):
        self.mlops.end_run()
        self.mlops.disconnect()

    # PostgreSQL: a dedicated schema, created and dropped here (the name is generated, not input).
    def pg_create_schema(self, url):
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        name = f"bench_{secrets.token_hex(6)}"
        engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
        try:
            with engine.begin() as connection:
                connection.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        except sa.exc.DBAPIError as error:
            return {"error": str(error).splitlines()[0]}
        finally:
            engine.dispose()
        separator = "&" if "?" in url else "?"
        return {"schema": name, "url": f"{url}{separator}options=-csearch_path%3D{name}"}

    def pg_drop_schema(self, url, schema):
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        self.mlops.disconnect()
        engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


class Peer:
    def setup(self, url, artifacts):
        self.mlflow, experiment = _peer.open_mlflow(url, artifacts, "log-metric-bench")
        self.run = self.mlflow.start_run(experiment_id=experiment, run_name="log-metric-bench")
        self.step = 0
        self.log(WARMUP)

    def log(self, n):
        mlflow, clock = self.mlflow, time.perf_counter_ns
        times = []
        for _ in range(n):
            step = self.step
            started = clock()
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            times.append((clock() - started) / 1e6)
            self.step += 1
        return times

    def count(self):
        return len(self.mlflow.tracking.MlflowClient().get_metric_history(self.run.info.run_id, "loss"))

    def teardown(self):
        self.mlflow.end_run()


def main():
    args = _peer.parse_args(__doc__.splitlines()[0])
    rounds, ours_n, peer_n, pg_n = (2, 100, 20, 200) if args.quick else (ROUNDS, OURS_PER_ROUND, PEER_PER_ROUND, PG_CALLS)
    samples = {"ours": [], "mlflow": [], "pg": []}
    notes = []
    with _peer.scratch_dir() as scratch, _peer.sides(__file__, peer=not args.no_peer, scratch=scratch) as (ours, peer):
        ours.call("setup", url=_peer.sqlite_url(scratch / "ours.db"), artifacts=str(scratch / "ours-artifacts"))
        if peer:
            peer.call("setup", url=_peer.sqlite_url(scratch / "mlflow.db"), artifacts=str(scratch / "mlflow-artifacts"))
        for index in range(rounds):
            pair = [("ours", ours, ours_n)] + ([("mlflow", peer, peer_n)] if peer else [])
            for side, worker, n in pair if index % 2 == 0 else reversed(pair):
                samples[side] += worker.call("log", n=n)
            print(f"[log_metric] round {index + 1}/{rounds}: ours p50 {_peer.median(samples['ours']):.4f} ms"
                  + (f", MLflow p50 {_peer.median(samples['mlflow']):.2f} ms" if peer else ""), flush=True)
        expected = WARMUP + len(samples["ours"])
        if ours.call("count") != expected:
            raise SystemExit(f"ours recorded {ours.call('count')} points, expected {expected}")
        ours.call("teardown")
        if peer:
            peer.call("teardown")

        created = ours.call("pg_create_schema", url=_peer.PG_URL)
        if "error" in created:
            notes.append(f"PostgreSQL not measured: {_peer.PG_URL} unreachable ({created['error']}).")
        else:
            try:
                ours.call("setup", url=created["url"])
                samples["pg"] = ours.call("log", n=pg_n)
                ours.call("teardown")
            finally:
                ours.call("pg_drop_schema", url=_peer.PG_URL, schema=created["schema"])

    ours_s, peer_s = samples["ours"], samples["mlflow"]
    rows = [
        _peer.row("log_metric p50, SQLite", _peer.median(ours_s), _peer.median(peer_s) if peer_s else None,
                  target=f"≤ {TARGET_P50_MS} ms", limit=TARGET_P50_MS),
        _peer.row("log_metric p99, SQLite", _peer.percentile(ours_s, 99), _peer.percentile(peer_s, 99) if peer_s else None),
        _peer.row("log_metric mean, SQLite", sum(ours_s) / len(ours_s), sum(peer_s) / len(peer_s) if peer_s else None),
    ]
    if samples["pg"]:
        pg = samples["pg"]
        rows += [
            _peer.row("log_metric p50, PostgreSQL (ours only)", _peer.median(pg), note="for information"),
            _peer.row("log_metric p99, PostgreSQL (ours only)", _peer.percentile(pg, 99), note="for information"),
        ]
    notes.insert(0, f"{len(ours_s):,} calls ours, {len(peer_s):,} calls MLflow on SQLite, in {rounds} alternating rounds "
                 f"after {WARMUP} warm-up calls each; each call timed alone, as a notebook writes it "
                 "(`mlops.log_metric(\"loss\", value, step=i)` / `mlflow.log_metric(...)`), one run active.")
    notes.append("Ours on SQLite: WAL journal, `synchronous=NORMAL` (a commit survives a killed process, not a power cut). "
                 "MLflow on SQLite: its defaults.")
    if samples["pg"]:
        notes.append(f"PostgreSQL: {len(samples['pg']):,} calls of ours against {_peer.PG_URL} "
                     "in a temporary schema; each call is one commit, so it is bound by the server's fsync.")
    _peer.finish(args, 2, "Durable log_metric latency", rows, notes)


if __name__ == "__main__":
    main()
