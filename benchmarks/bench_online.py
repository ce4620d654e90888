"""Online feature lookup in-process: ``mlops.get_online_features`` after ``mlops.materialize``.

Data: one float64 feature over 10,000 integer entities (seeded numpy, 3 rows per entity at
different times, so materialisation picks the latest), registered in a fresh SQLite registry in
a temporary folder, then materialised to the registry database and to Redis
(``--redis URL``, default ``redis://127.0.0.1:6379/15``; the keys written are deleted at the
end; Redis rows are skipped with a note if it is unreachable).

Timed: ``get_online_features("x", entities, output=...)`` for 1 entity and for 100 entities
(random entities, a new draw per call), ``output="dict"`` and ``output="frame"`` (a pandas
DataFrame), ``--calls`` calls each (default 2,000) after 200 warm-up calls: p50 and p99 of the
per-call wall time. Peak memory: tracemalloc peak over 200 further calls of each case (the
lookup's own allocations), and the process's peak RSS.

Targets (the issue): 1 entity <= 0.2 ms p50, 100 entities <= 2 ms p50.

Run: ``.venv/bin/python benchmarks/bench_online.py`` (from the project root).
"""

import argparse
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

N_ENTITIES = 10_000
ROWS_PER_ENTITY = 3
SEED = 20261126
TARGETS_MS = {1: 0.2, 100: 2.0}
COMMAND = ".venv/bin/python benchmarks/bench_online.py"


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args(argv)

    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import mlops_jupyter as mlops

    rng = np.random.default_rng(SEED)
    folder = Path(tempfile.mkdtemp(prefix="bench-online-"))
    mlops.connect(f"sqlite:///{folder / 'registry.db'}", artifacts=str(folder / "artifacts"))
    n = N_ENTITIES * ROWS_PER_ENTITY
    frame = pd.DataFrame({
        "customer": np.tile(np.arange(N_ENTITIES), ROWS_PER_ENTITY),
        "at": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 86_400 * 30, n), "s"),
        "x": rng.random(n),
    })
    mlops.register_feature("x", frame, entity="customer", timestamp="at")
    env = f"bench{rng.integers(1 << 30)}"

    stores = {"sqlite": None}
    started = time.perf_counter()
    mlops.materialize("x", env=env)
    materialize_s = {"sqlite": time.perf_counter() - started}
    notes = []
    try:
        started = time.perf_counter()
        mlops.materialize("x", env=env, store=args.redis)
        materialize_s["redis"] = time.perf_counter() - started
        stores["redis"] = args.redis
    except mlops.MlopsError as error:
        notes.append(f"Redis skipped: {error}")

    rows = []
    for backend, store in stores.items():
        for size in (1, 100):
            for output in ("dict", "frame"):
                draws = rng.integers(0, N_ENTITIES, (args.calls + 400, size)).tolist()

                def call(i):
                    return mlops.get_online_features("x", draws[i], env=env, store=store, output=output)

                for i in range(200):
                    call(i)
                times = []
                for i in range(200, 200 + args.calls):
                    t0 = time.perf_counter()
                    call(i)
                    times.append((time.perf_counter() - t0) * 1e3)
                tracemalloc.start()
                for i in range(200 + args.calls, 400 + args.calls):
                    call(i)
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                p50 = statistics.median(times)
                target = TARGETS_MS[size]
                rows.append((backend, size, output, p50, percentile(times, 0.99), peak / 1024, target,
                             "yes" if p50 <= target else "no"))

    if "redis" in stores:
        import redis

        client = redis.Redis.from_url(args.redis)
        client.delete(f"mlops:{env}", f"mlops:{env}:x")
        client.close()

    print(f"## Online lookup in-process ({N_ENTITIES:,} entities, {args.calls:,} calls per row)\n")
    print("| store | entities | output | p50 ms | p99 ms | tracemalloc peak KiB | target p50 ms | met |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for backend, size, output, p50, p99, peak, target, met in rows:
        print(f"| {backend} | {size} | {output} | {p50:.3f} | {p99:.3f} | {peak:.1f} | {target} | {met} |")
    print()
    print("materialise 10,000 entities (30,000 rows): "
          + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in materialize_s.items()))
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    for note in notes:
        print(note)
    print(f"\ncommand: `{COMMAND}`")


if __name__ == "__main__":
    main()
