"""Training set: point-in-time join of 5 features onto 1,000,000 label rows.

Data (seeded numpy): a source of 1,000,000 rows over 10,000 integer entities, timestamps at
one-second resolution over a year, sorted by time, with 5 value columns (3 float64, 2 int64);
1,000,000 label rows in random order (random entities, random times starting 2 days before the
source's first row, so some rows have no earlier value), with a label and an extra column.

Two scenarios:
- ``shared``: the 5 feature frames are the source's (entity, timestamp) columns with one value
  column each (5 features computed from one source, the brief's case);
- ``independent``: each feature frame has its own 1,000,000 (entity, timestamp) rows (5 sources
  with different update times), so no search can be shared between features.

Sides, alternating, median of 5 each (after one warm-up of each):
- baseline: bare pandas: sort the labels by timestamp once, then ``pandas.merge_asof`` each
  feature frame in turn (``on=timestamp, by=entity, direction="backward"``); restoring the
  original label order is *not* timed (it is done afterwards, for the value check);
- ours: ``mlops_jupyter.features.asof.point_in_time_join`` (returns rows in the original order).

Values are checked identical (``assert_frame_equal`` on the feature columns, dtypes included).
Peak memory: each side runs once more in a fresh subprocess that builds the data, then runs the
join under ``tracemalloc`` (numpy and pandas report their buffers to it): the reported figure is
the join's tracemalloc peak (memory allocated by the join at its high point, inputs excluded).
The process's peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, data building included)
is printed too.

Run: ``.venv/bin/python benchmarks/bench_training_set.py`` (from the project root).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

N_LABELS = 1_000_000
N_SOURCE = 1_000_000
N_ENTITIES = 10_000
N_FEATURES = 5
REPETITIONS = 5
TARGET_RATIO = 1.2
SEED = 20261126
YEAR_S = 365 * 24 * 3600
T0 = 1_700_000_000  # seconds since the epoch


def make_data(scenario):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(SEED)

    def keys(n):
        t = np.sort(rng.integers(T0, T0 + YEAR_S, n)).astype("datetime64[s]").astype("datetime64[ns]")
        return rng.integers(0, N_ENTITIES, n), t

    e, t = keys(N_SOURCE)
    values = {}
    for i in range(N_FEATURES):
        if i in (2, 4):
            values[f"f{i}"] = rng.integers(-1_000_000, 1_000_000, N_SOURCE)
        else:
            values[f"f{i}"] = rng.normal(size=N_SOURCE)
    frames = {}
    for i, (name, v) in enumerate(values.items()):
        if scenario == "independent" and i > 0:
            e, t = keys(N_SOURCE)
        frames[name] = pd.DataFrame({"entity": e, "ts": t, name: v})
    label_t = rng.integers(T0 - 2 * 86400, T0 + YEAR_S, N_LABELS).astype("datetime64[s]")
    labels = pd.DataFrame(
        {
            "entity": rng.integers(0, N_ENTITIES, N_LABELS),
            "ts": label_t.astype("datetime64[ns]"),
            "label": rng.integers(0, 2, N_LABELS),
            "weight": rng.random(N_LABELS),
        }
    )
    return labels, frames


def baseline(labels, frames):
    """Bare pandas: sort once, merge_asof each feature in turn (result in time order)."""
    import numpy as np
    import pandas as pd

    left = labels.assign(_order=np.arange(len(labels))).sort_values("ts", kind="stable")
    for frame in frames.values():
        left = pd.merge_asof(left, frame, on="ts", by="entity", direction="backward",
                             allow_exact_matches=True)
    return left


def ours(labels, frames):
    from mlops_jupyter.features.asof import point_in_time_join

    return point_in_time_join(labels, frames, entity="entity", timestamp="ts")


SIDES = {"baseline": baseline, "ours": ours}


def child(side, scenario):
    """Fresh process: build the data, run one join, report peak RSS before and after."""
    import tracemalloc

    labels, frames = make_data(scenario)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    result = SIDES[side](labels, frames)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kib": before, "after_kib": after, "traced_kib": traced_peak / 1024,
                      "rows": len(result)}))


def run_scenario(scenario, repetitions):
    import pandas as pd

    print(f"[{scenario}] building data ...", flush=True)
    labels, frames = make_data(scenario)
    cols = list(frames)

    print(f"[{scenario}] warm-up and value check ...", flush=True)
    base = baseline(labels, frames)
    base = base.sort_values("_order").set_index(labels.index)  # back to the labels' order
    mine = ours(labels, frames)
    pd.testing.assert_frame_equal(mine[cols], base[cols])
    pd.testing.assert_frame_equal(mine[list(labels.columns)], labels)
    identical = True
    no_earlier = int(mine[cols].isna().all(axis=1).sum())
    rows = len(mine)
    del base

    times = {"baseline": [], "ours": []}
    for rep in range(repetitions):
        for side in ("baseline", "ours") if rep % 2 == 0 else ("ours", "baseline"):
            start = time.perf_counter()
            SIDES[side](labels, frames)
            times[side].append(time.perf_counter() - start)
        print(f"[{scenario}] repetition {rep + 1}/{repetitions}: baseline "
              f"{times['baseline'][-1]:.3f} s, ours {times['ours'][-1]:.3f} s", flush=True)
    del labels, frames, mine

    memory = {}
    for side in ("baseline", "ours"):
        print(f"[{scenario}] peak memory of {side} in a fresh subprocess ...", flush=True)
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", side, scenario],
            check=True, capture_output=True, text=True,
        ).stdout
        memory[side] = json.loads(out.strip().splitlines()[-1])
    return {
        "median": {s: statistics.median(v) for s, v in times.items()},
        "memory": memory,
        "identical": identical,
        "no_earlier": no_earlier,
        "rows": rows,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=REPETITIONS)
    parser.add_argument("--scenario", choices=("shared", "independent", "both"), default="both")
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "SCENARIO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if args.child:
        child(*args.child)
        return

    import numpy as np
    import pandas as pd

    started = time.perf_counter()
    scenarios = ("shared", "independent") if args.scenario == "both" else (args.scenario,)
    results = {s: run_scenario(s, args.repetitions) for s in scenarios}

    mib = 1024.0
    print()
    print(f"## Training set: {N_LABELS:,} label rows x {N_FEATURES} features over "
          f"{N_SOURCE:,}-row source(s), {N_ENTITIES:,} entities")
    print()
    print(f"Command: `{sys.executable} {' '.join(sys.argv)}`  ")
    print(f"pandas {pd.__version__}, numpy {np.__version__}, {os.cpu_count()} cores; "
          f"medians of {args.repetitions} alternating runs; peak memory = "
          f"tracemalloc peak of the join alone, in a fresh subprocess per side "
          f"(process peak RSS from `getrusage(RUSAGE_SELF).ru_maxrss` in brackets)")
    print()
    print("| scenario | baseline: sort once + 5x merge_asof | point_in_time_join | ratio (ours / baseline) "
          "| target <= 1.2x | baseline join peak (process RSS) | ours join peak (process RSS) | identical values "
          "| rows with no earlier value kept |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for scenario, r in results.items():
        b, o = r["median"]["baseline"], r["median"]["ours"]
        mb, mo = r["memory"]["baseline"], r["memory"]["ours"]
        ratio = o / b
        print(f"| {scenario} | {b:.3f} s | {o:.3f} s | {ratio:.2f}x | "
              f"{'met' if ratio <= TARGET_RATIO else '**not met**'} | "
              f"{mb['traced_kib'] / mib:.0f} MiB ({mb['after_kib'] / mib:.0f} MiB) | "
              f"{mo['traced_kib'] / mib:.0f} MiB ({mo['after_kib'] / mib:.0f} MiB) | "
              f"{'yes' if r['identical'] else 'NO'} | {r['no_earlier']:,} of {r['rows']:,} |")
    print()
    met = all(r["median"]["ours"] / r["median"]["baseline"] <= TARGET_RATIO for r in results.values())
    print(f"Target <= {TARGET_RATIO}x the bare merge_asof baseline: {'met' if met else 'NOT met'} "
          f"in {'all scenarios' if len(results) > 1 else 'this scenario'}. "
          f"Total {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
