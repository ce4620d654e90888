"""Figure 8: rerunning a converted 20-step pipeline, against ploomber's unchanged rebuild.

The notebook (``notebook_cells``): imports, a ``parameters`` cell and 20 steps tagged
``step:NAME`` in a chain: ``load`` builds a 1,000-row DataFrame, each next step copies the
previous step's frame, adds a derived column and a per-group summary. Converted once with
``mlops convert``; the first run executes every step, after which:

* **unchanged rerun**: ``mlops pipeline run DIR`` as a fresh process (the wall time a user
  waits for), and ``api.run_pipeline(DIR)`` in a warm process (the runner alone); every step
  must come from cache.
* **one middle step changed**: the notebook's step 10 gets a new constant (a new value in each
  trial), the notebook is converted again (not timed) and the pipeline run: steps 10-19 rerun,
  0-9 come from cache.

Peer: ploomber, on an equivalent pipeline.yaml of 20 Python-function tasks doing the same
DataFrame work, each reading its upstream's Parquet file and writing its own (ours stores
DataFrames as Parquet too). Timed: ``ploomber build`` (fresh process) and ``DAGSpec(...).to_dag()
.build()`` in a warm process for the unchanged rebuild; ``ploomber build`` after editing task 10.
All cases alternate within every round. soorgeon and ploomber live in ``benchmarks/.venv-ploomber``.
"""

import json
import re
import time
from pathlib import Path

import _peer
from bench_convert import PLOOMBER_ENV, PLOOMBER_PYTHON, PLOOMBER_VENV, ensure_ploomber, mlops_cli, wall_ms

ROUNDS = 7
TARGET_MS = 500
STEPS = 20
CHANGED = 10  # the middle step whose code changes
ROWS = 1000


def step_names():
    return ["load"] + [f"s{k:02d}" for k in range(1, STEPS)]


def step_body(k, offset=0):
    """The Python of step ``k`` (notebook cell, or the body of a ploomber task after reading its input)."""
    if k == 0:
        return ("rng = np.random.default_rng(seed)\n"
                "frame_0 = pd.DataFrame({'g': rng.integers(0, 8, size=n_rows), 'x': rng.normal(size=n_rows),\n"
                "                        'y': rng.uniform(size=n_rows)})")
    extra = f" + {offset}" if k == CHANGED else ""
    return (f"frame_{k} = frame_{k - 1}.copy()\n"
            f"frame_{k}['f{k}'] = frame_{k}['x'] * {k} + frame_{k}['y'] * scale{extra}\n"
            f"summary_{k} = frame_{k}.groupby('g')['f{k}'].agg(['mean', 'std']).reset_index()")


def notebook_json(offset=0):
    cells = [
        ("markdown", "# A 20-step pipeline", []),
        ("code", "import numpy as np\nimport pandas as pd", ["step:load"]),
        ("code", f"n_rows = {ROWS}\nseed = 3\nscale = 0.5", ["parameters"]),
    ]
    for k, name in enumerate(step_names()):
        cells.append(("markdown", f"## Step {k}", []))
        cells.append(("code", step_body(k, offset), [f"step:{name}"]))
    cells.append(("code", f"summary_{STEPS - 1}.head()", []))  # joins the last step, as an untagged cell does
    notebook_cells = []
    for index, (kind, source, tags) in enumerate(cells):
        cell = {"cell_type": kind, "id": f"cell-{index:03d}", "metadata": {"tags": tags} if tags else {},
                "source": source}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        notebook_cells.append(cell)
    return json.dumps({"cells": notebook_cells, "metadata": {"kernelspec": {"name": "python3",
                                                                              "display_name": "Python 3",
                                                                              "language": "python"}},
                       "nbformat": 4, "nbformat_minor": 5}, indent=1)


def ploomber_project(folder, offset=0):
    """pipeline.yaml and tasks.py: the same 20 steps as ploomber PythonCallable tasks."""
    folder.mkdir(exist_ok=True)
    names = step_names()
    lines = ["import numpy as np", "import pandas as pd", "", "n_rows, seed, scale = " + f"{ROWS}, 3, 0.5", ""]
    for k, name in enumerate(names):
        lines.append(f"\ndef {name}(product{', upstream' if k else ''}):")
        if k:
            lines.append(f"    frame_{k - 1} = pd.read_parquet(str(upstream[{names[k - 1]!r}]))")
        lines += ["    " + line for line in step_body(k, offset).splitlines()]
        lines.append(f"    frame_{k}.to_parquet(str(product))")
    (folder / "tasks.py").write_text("\n".join(lines) + "\n")
    tasks = "".join(f"  - source: tasks.{name}\n    product: output/{name}.parquet\n" for name in names)
    (folder / "pipeline.yaml").write_text("tasks:\n" + tasks)


# ---- warm worker processes -------------------------------------------------------------------


class Ours:
    def __init__(self):
        from mlops_jupyter import api

        self.api = api
        api.connect()  # the working directory's .mlops/registry.db, as the CLI finds it

    def run_ms(self, directory):
        started = time.perf_counter()
        result = self.api.run_pipeline(directory)
        elapsed = (time.perf_counter() - started) * 1000
        return {"ms": elapsed, "statuses": sorted({s["status"] for s in result["steps"].values()}),
                "ran": sorted(n for n, s in result["steps"].items() if s["status"] != "cached")}

    def close(self):
        pass


class Ploomber:
    def __init__(self):
        import os

        os.environ.update(PLOOMBER_ENV)
        from ploomber.spec import DAGSpec

        self.DAGSpec = DAGSpec

    def build_ms(self, directory):
        import contextlib
        import io
        import os

        folder = os.getcwd()
        os.chdir(directory)
        try:
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                report = self.DAGSpec("pipeline.yaml").to_dag().build()
            elapsed = (time.perf_counter() - started) * 1000
            return {"ms": elapsed, "ran": sorted(n for n, ran in zip(report["name"], report["Ran?"]) if ran)}
        finally:
            os.chdir(folder)


# ---- orchestration ---------------------------------------------------------------------------


def statuses_of(output):
    """The counts of the summary line ``mlops pipeline run`` prints (``N ran, N cached, N not run``)."""
    found = re.search(r"\d+ ran, \d+ cached, \d+ not run", output.stdout)
    return found.group(0) if found else (output.stdout + output.stderr).strip()


def main():
    args = _peer.parse_args(__doc__.splitlines()[0])
    rounds = 3 if args.quick else ROUNDS
    peer = not args.no_peer
    if peer:
        ensure_ploomber()
    _peer.warm_bytecode(_peer.ours_python(), "ours")
    keys = ("ours_cli", "ours_inproc", "ours_cli_changed", "ours_inproc_changed", "ploomber_cli",
            "ploomber_inproc", "ploomber_cli_changed", "bare_ours", "bare_peer", "ours_cli_startup")
    times = {key: [] for key in keys}
    first = {}
    checks = []
    offset = [0]
    with _peer.scratch_dir() as scratch:
        notebook = scratch / "steps20.ipynb"
        directory = scratch / "steps20_pipeline"
        project = scratch / "ploomber"

        def convert(new_offset):
            notebook.write_text(notebook_json(new_offset))
            wall_ms([mlops_cli(), "convert", notebook, "-o", directory], scratch)

        convert(0)
        first["ours"], done = wall_ms([mlops_cli(), "pipeline", "run", directory], scratch)
        checks.append(("first run", statuses_of(done)))
        ploomber_project(project)
        if peer:
            first["ploomber"], _ = wall_ms([PLOOMBER_VENV / "bin" / "ploomber", "build"], project)
        ours = _peer.Worker(_peer.ours_python(), __file__, "Ours", cwd=scratch)
        other = _peer.Worker(PLOOMBER_PYTHON, __file__, "Ploomber", cwd=scratch) if peer else None
        try:
            warm = ours.call("run_ms", directory=str(directory))
            assert warm["ran"] == [], warm
            if peer:
                warm = other.call("build_ms", directory=str(project))
                assert warm["ran"] == [], warm

            def ours_cli():
                elapsed, done = wall_ms([mlops_cli(), "pipeline", "run", directory], scratch)
                assert "0 ran, 20 cached" in done.stdout, done.stdout
                checks.append(("unchanged CLI", statuses_of(done)))
                return elapsed

            def ours_inproc():
                result = ours.call("run_ms", directory=str(directory))
                assert result["ran"] == [], result
                return result["ms"]

            def ours_changed(cli):
                def measure():
                    offset[0] += 1
                    convert(offset[0])
                    if cli:
                        elapsed, done = wall_ms([mlops_cli(), "pipeline", "run", directory], scratch)
                        checks.append(("changed CLI", statuses_of(done)))
                        return elapsed
                    result = ours.call("run_ms", directory=str(directory))
                    assert result["ran"] == step_names()[CHANGED:], result
                    return result["ms"]
                return measure

            def ploomber_cli():
                elapsed, done = wall_ms([PLOOMBER_VENV / "bin" / "ploomber", "build"], project)
                assert "True" not in done.stdout, done.stdout  # the "Ran?" column
                return elapsed

            def ploomber_inproc():
                result = other.call("build_ms", directory=str(project))
                assert result["ran"] == [], result
                return result["ms"]

            def ploomber_changed():
                offset[0] += 1
                ploomber_project(project, offset[0])
                elapsed, done = wall_ms([PLOOMBER_VENV / "bin" / "ploomber", "build"], project)
                ran = done.stdout.count("True")
                assert ran == STEPS - CHANGED, done.stdout
                return elapsed

            for r in range(rounds):
                cases = [("ours_cli", ours_cli), ("ours_inproc", ours_inproc),
                         ("bare_ours", lambda: wall_ms([_peer.ours_python(), "-c", "pass"], scratch)[0]),
                         ("ours_cli_startup", lambda: wall_ms([mlops_cli(), "pipeline", "run", "--help"], scratch)[0])]
                if peer:
                    cases += [("ploomber_cli", ploomber_cli), ("ploomber_inproc", ploomber_inproc),
                              ("bare_peer", lambda: wall_ms([PLOOMBER_PYTHON, "-c", "pass"], scratch)[0])]
                cases = cases[::2] + cases[1::2] if r % 2 else cases
                # a changed run leaves everything cached for the unchanged cases that follow it
                changed = [("ours_cli_changed", ours_changed(True)), ("ours_inproc_changed", ours_changed(False))]
                if peer:
                    changed.append(("ploomber_cli_changed", ploomber_changed))
                if r % 2:
                    changed.reverse()
                for key, measure in cases + changed:
                    times[key].append(measure())
                print(f"[rerun] round {r + 1}/{rounds}: ours CLI {times['ours_cli'][-1]:.0f} ms, in-process "
                      f"{times['ours_inproc'][-1]:.0f} ms, changed CLI {times['ours_cli_changed'][-1]:.0f} ms"
                      + (f"; ploomber CLI {times['ploomber_cli'][-1]:.0f} ms, in-process "
                         f"{times['ploomber_inproc'][-1]:.0f} ms, changed {times['ploomber_cli_changed'][-1]:.0f} ms"
                         if peer else ""), flush=True)
        finally:
            ours.close()
            if other is not None:
                other.close()

    m = {key: (_peer.median(values) if values else None) for key, values in times.items()}
    rows = [
        _peer.row("unchanged rerun, 20 steps all cached: `mlops pipeline run` vs `ploomber build`, CLI wall time",
                  m["ours_cli"], m["ploomber_cli"], target=f"≤ {TARGET_MS} ms", limit=TARGET_MS),
        _peer.row("same in a warm process: `api.run_pipeline` vs `DAGSpec(...).to_dag().build()`",
                  m["ours_inproc"], m["ploomber_inproc"], target=f"≤ {TARGET_MS} ms", limit=TARGET_MS),
        _peer.row("`mlops pipeline run --help`: interpreter and CLI parser, no registry (for information)",
                  m["ours_cli_startup"], None),
        _peer.row("bare interpreter start of each venv (for information)", m["bare_ours"], m["bare_peer"]),
        _peer.row(f"step {CHANGED} of 20 changed (steps {CHANGED}-{STEPS - 1} rerun): CLI wall time",
                  m["ours_cli_changed"], m["ploomber_cli_changed"]),
        _peer.row("same in a warm process (ours only)", m["ours_inproc_changed"], None),
        _peer.row("first run, every step executed, CLI (one each, for information)", first.get("ours"),
                  first.get("ploomber")),
    ]
    notes = [
        f"{rounds} rounds; each round runs every unchanged case once (order alternating between rounds), then "
        "the changed cases (a new constant in step 10 each time); medians.",
        f"Steps: a {ROWS}-row DataFrame, then 19 steps in a chain, each a copy plus one derived column and a "
        "per-group mean/std; ours stores each step's frames as Parquet in the content-addressed artifact store and "
        "records one registry run per pipeline run with one child run per step (21 runs per rerun, cached or not).",
        "Ours, as `mlops pipeline run` reported: " + "; ".join(sorted({f"{what}: `{line}`" for what, line in checks})),
        "Ploomber: `pipeline.yaml` with 20 `PythonCallable` tasks (`tasks.NAME`, Parquet products); an unchanged "
        "rebuild checks each task's source and upstream timestamps and runs none; after editing task 10, "
        f"{STEPS - CHANGED} tasks ran in every trial.",
        "CLI rows are fresh processes (`.venv/bin/mlops pipeline run DIR` in the folder holding `.mlops/`, "
        "`.venv-ploomber/bin/ploomber build` in the project folder); bytecode cached for both.",
    ]
    if peer:
        notes.append("Versions: " + ", ".join(f"{k} {v}" for k, v in _peer.versions(
            PLOOMBER_PYTHON, ("ploomber", "pandas", "pyarrow")).items() if v))
    return _peer.finish(args, 8, "Rerunning a 20-step pipeline (peer: ploomber)", rows, notes, peer="ploomber")


if __name__ == "__main__":
    main()
