"""Run every benchmark figure, one process each, then print (and with --write, save) the results.

    .venv/bin/python benchmarks/run_all.py            # all eight figures, ~20-25 minutes
    .venv/bin/python benchmarks/run_all.py --write    # and rewrite benchmarks/RESULTS.md
    .venv/bin/python benchmarks/run_all.py --quick    # smoke test: small counts, not figures

The first run creates benchmarks/.venv-mlflow (pip install mlflow scikit-learn pandas); figures 7 and 8
create benchmarks/.venv-ploomber (soorgeon, ploomber) when missing.
RESULTS.md is generated down to the marker line; text below the marker is kept.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _peer

SCRIPTS = ("bench_import.py", "bench_log_metric.py", "bench_create_runs.py", "bench_search.py", "bench_models.py",
           "bench_notebook.py", "bench_convert.py", "bench_pipeline_rerun.py")
RESULTS = _peer.HERE / "RESULTS.md"
MARKER = "<!-- generated above by run_all.py --write; written by hand below, kept on regeneration -->"
OURS_PACKAGES = ("mlops-jupyter", "SQLAlchemy", "alembic", "pandas", "scikit-learn", "skops", "psycopg", "numpy")
PEER_PACKAGES = ("mlflow", "SQLAlchemy", "alembic", "pandas", "scikit-learn", "numpy")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite benchmarks/RESULTS.md from this run")
    parser.add_argument("--quick", action="store_true", help="small counts: checks the scripts work")
    parser.add_argument("--only", nargs="+", metavar="SCRIPT", help="run only these scripts")
    args = parser.parse_args()
    scripts = [s for s in SCRIPTS if not args.only or s in args.only or s.removesuffix(".py") in args.only]

    peer_python = _peer.ensure_peer()
    started_at = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    results, durations = [], {}
    with tempfile.TemporaryDirectory(prefix="mlops-bench-results-") as folder:
        for script in scripts:
            out = Path(folder) / (script + ".json")
            command = [str(_peer.ours_python()), str(_peer.HERE / script), "--json", str(out)]
            if args.quick:
                command.append("--quick")
            print(f"\n=== {script} ===", flush=True)
            began = time.perf_counter()
            done = subprocess.run(command, cwd=_peer.ROOT)
            durations[script] = time.perf_counter() - began
            if done.returncode != 0:
                sys.exit(f"{script} failed ({done.returncode})")
            results.append(json.loads(out.read_text()))
            print(f"=== {script}: {durations[script]:.0f} s ===", flush=True)

    info = {
        "date": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _peer.machine(),
        "memory": _memory(),
        "ours": _peer.versions(_peer.ours_python(), OURS_PACKAGES),
        "peer": _peer.versions(peer_python, PEER_PACKAGES),
        "peer_python": subprocess.run([str(peer_python), "-c", "import platform; print(platform.python_version())"],
                                      capture_output=True, text=True).stdout.strip(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "durations": durations,
        "quick": args.quick,
    }
    report = render(results, info)
    print("\n" + report)
    if args.write:
        kept = ""
        if RESULTS.exists() and MARKER in RESULTS.read_text():
            kept = RESULTS.read_text().split(MARKER, 1)[1]
        RESULTS.write_text(report + "\n" + MARKER + (kept or "\n"))
        print(f"wrote {RESULTS.relative_to(_peer.ROOT)}")


def _memory():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return "unknown"


def render(results, info):
    machine = info["machine"]
    total = sum(info["durations"].values())
    lines = [
        "# Benchmarks: mlops-jupyter against MLflow",
        "",
        ("**QUICK RUN (small counts): not figures.** " if info["quick"] else "")
        + f"Run on {info['date']}, all figures in one `run_all.py` run of {total / 60:.1f} minutes.",
        "",
        "## Machine and versions",
        "",
        f"- {machine['nproc']} cores (`nproc` = {machine['nproc']}), {info['memory']} memory, {machine['processor']}; "
        f"{machine['platform']}.",
        f"- Load average (1, 5, 15 min) before: {', '.join(f'{x:.1f}' for x in info['load_before'])}; after: "
        f"{', '.join(f'{x:.1f}' for x in info['load_after'])}. The machine is shared and noisy: each script "
        "alternates repetitions between the two sides and quotes medians, so both see the same noise.",
        f"- Python {machine['python']} (ours, `.venv`) and {info['peer_python']} (MLflow, `benchmarks/.venv-mlflow`).",
        "- Ours: " + ", ".join(f"{k} {v}" for k, v in info["ours"].items() if v),
        "- MLflow side: " + ", ".join(f"{k} {v}" for k, v in info["peer"].items() if v),
        "- Both on SQLite files in a temporary folder (MLflow: `sqlite:///…` tracking and registry URI, local "
        "artifact folder). Each side runs in its own worker process with its own venv; timings are taken inside "
        "the workers.",
        "",
        "## Summary",
        "",
        "| figure | measure | ours | peer (MLflow unless named) | ours faster by | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        for row in result["rows"]:
            if row["target"]:
                met = {True: "yes", False: "**no**", None: "—"}[row["met"]]
                lines.append(
                    f"| {result['figure']} | {row['what']} | {_peer.fmt(row['ours'], row['unit'])} | "
                    f"{_peer.fmt(row['mlflow'], row['unit'])}{_peer_label(result, row)} | {_peer.fmt_ratio(row['ratio'])} | {row['target']} | {met} |"
                )
    lines += ["", "## How to run", "", "```sh", ".venv/bin/python benchmarks/run_all.py --write   # everything",
              "```", ""]
    for result in results:
        lines += [
            f"## {result['figure']}. {result['title']}",
            "",
            f"Command: `{result['command']}` ({info['durations'].get(_script_of(result), 0):.0f} s in this run)",
            "",
            _peer.markdown_table(result["rows"], result.get("peer", "MLflow")),
            "",
            *[f"- {note}" for note in result["notes"]],
            f"- Load average at the end: {', '.join(f'{x:.1f}' for x in result['load_average_after'])}.",
            "",
        ]
    return "\n".join(lines)


def _peer_label(result, row):
    """The peer's name after its figure in the summary, where the peer is not MLflow."""
    peer = result.get("peer", "MLflow")
    return f" ({peer})" if peer != "MLflow" and row["mlflow"] is not None else ""


def _script_of(result):
    return result["command"].split("benchmarks/", 1)[1].split()[0]


if __name__ == "__main__":
    main()
