"""Shared machinery of the side-by-side benchmarks against MLflow.

Standard library only: the MLflow venv's python imports this file too.

* ``ensure_peer()`` creates ``benchmarks/.venv-mlflow`` with MLflow in it when missing.
* ``Worker`` runs one side of a benchmark (a class in the benchmark script, e.g. ``Ours`` or
  ``Peer``) in its own process, with its own python, and calls its methods over a pipe (one JSON
  line a call). Timings are taken inside the worker, so the pipe costs nothing measured; the
  orchestrating script alternates calls between the two sides so that a noisy stretch of the
  machine hits both.
* Statistics, the result table every script prints and the ``--json`` file ``run_all`` reads.
"""

import argparse
import importlib.util
import json
import math
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OURS_PYTHON = ROOT / ".venv" / "bin" / "python"
PEER_VENV = HERE / ".venv-mlflow"
PEER_PYTHON = PEER_VENV / "bin" / "python"
PEER_PACKAGES = ("mlflow", "scikit-learn", "pandas")
_PEER_READY = PEER_VENV / ".ready"  # written once pip finished and mlflow imports

# Nothing leaves this machine: MLflow 3 sends usage telemetry unless told not to.
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "PYTHONWARNINGS": "ignore",
    "TQDM_DISABLE": "1",
    "MLOPS_USER": "bench",
}
# Bytecode: this machine sets PYTHONDONTWRITEBYTECODE, so a package without .pyc files (an
# editable install like ours) would be compiled at every import while pip-installed ones
# (MLflow) are not. Workers write and read .pyc files here instead, for both sides alike,
# which is what a user's machine does; ``warm_bytecode`` fills it once per python.
PYCACHE = HERE / ".venv-pycache"
PG_URL = os.environ.get("MLOPS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def ours_python():
    return OURS_PYTHON if OURS_PYTHON.exists() else Path(sys.executable)


def ensure_peer():
    """The MLflow venv's python, creating the venv (python3 -m venv, pip install) if missing."""
    if _PEER_READY.exists() and PEER_PYTHON.exists():
        return PEER_PYTHON
    log = PEER_VENV / "install.log"
    print(f"[peer] creating {PEER_VENV.relative_to(ROOT)} and installing {' '.join(PEER_PACKAGES)} "
          f"(a few minutes; pip output in {log.relative_to(ROOT)})", flush=True)
    started = time.perf_counter()
    if not PEER_PYTHON.exists():
        python3 = shutil.which("python3") or sys.executable
        subprocess.run([python3, "-m", "venv", str(PEER_VENV)], check=True)
    with open(log, "w") as out:
        done = subprocess.run(
            [str(PEER_PYTHON), "-m", "pip", "install", "--disable-pip-version-check", *PEER_PACKAGES],
            stdout=out, stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        sys.exit(f"[peer] pip install failed ({done.returncode}); see {log}")
    subprocess.run([str(PEER_PYTHON), "-c", "import mlflow"], check=True, env=worker_env())
    _PEER_READY.write_text(json.dumps(versions(PEER_PYTHON, ("mlflow", "scikit-learn", "pandas"))))
    print(f"[peer] ready in {time.perf_counter() - started:.0f} s", flush=True)
    return PEER_PYTHON


def worker_env():
    env = dict(os.environ)
    env.update(QUIET_ENV)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLOPS_REGISTRY_URL", "MLOPS_ARTIFACTS_URL"):
        env.pop(name, None)
    return env


# What each side imports while benchmarked, imported once up front so their .pyc files exist.
WARM_IMPORTS = {
    "ours": ["mlops_jupyter.api", "mlops_jupyter.registry.store", "mlops_jupyter.registry.search",
             "mlops_jupyter.registry.artifacts", "mlops_jupyter.tracking.capture", "mlops_jupyter.models.serialize",
             "mlops_jupyter.models.signature", "mlops_jupyter.models.gates", "alembic.command", "skops.io",
             "sqlalchemy.dialects.sqlite", "sqlalchemy.dialects.postgresql", "psycopg", "pandas",
             "sklearn.linear_model", "sklearn.datasets"],
    "mlflow": ["mlflow", "mlflow.sklearn", "mlflow.tracking", "mlflow.store.tracking.sqlalchemy_store",
               "mlflow.store.model_registry.sqlalchemy_store", "mlflow.models", "pandas",
               "sklearn.linear_model", "sklearn.datasets"],
}


def warm_bytecode(python, side):
    """Import ``side``'s modules once with ``python`` so that their bytecode is cached in PYCACHE."""
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    try: importlib.import_module(name)\n    except ImportError: pass"
    subprocess.run([str(python), "-c", code, *WARM_IMPORTS[side]], env=worker_env(), cwd=tempfile.gettempdir(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)


def versions(python, distributions):
    """``{distribution: version}`` as installed for ``python``."""
    code = (
        "import json, sys\nfrom importlib import metadata\nout = {}\n"
        "for d in sys.argv[1:]:\n"
        "    try: out[d] = metadata.version(d)\n"
        "    except metadata.PackageNotFoundError: out[d] = None\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run([str(python), "-c", code, *distributions], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


# ---- workers ------------------------------------------------------------------------------


class WorkerError(RuntimeError):
    pass


class Worker:
    """One side of a benchmark in its own process: ``call("method", **kwargs)`` returns its result.

    ``script`` is the benchmark file, ``side`` the name of a class in it. The class is
    instantiated once; its state (open registry, active run) lives as long as the worker.
    """

    def __init__(self, python, script, side, *, cwd, timeout=600):
        self.side = side
        self.timeout = timeout
        self.process = subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), "serve", str(Path(script).resolve()), side],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=cwd, env=worker_env(),
        )
        self._replies = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._pending = 0

    def _read(self):
        for line in self.process.stdout:
            self._replies.put(line)
        self._replies.put(None)

    def send(self, method, **kwargs):
        """Start a call without waiting (pair with ``receive``): for untimed work done in parallel."""
        self.process.stdin.write(json.dumps({"method": method, "kwargs": kwargs}) + "\n")
        self.process.stdin.flush()
        self._pending += 1

    def receive(self, timeout=None):
        try:
            line = self._replies.get(timeout=timeout or self.timeout)
        except queue.Empty:
            self.close(kill=True)
            raise WorkerError(f"{self.side}: no answer within {timeout or self.timeout} s; worker stopped") from None
        self._pending -= 1
        if line is None:
            raise WorkerError(f"{self.side}: worker exited ({self.process.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise WorkerError(f"{self.side} failed:\n{reply['error']}")
        return reply["result"]

    def call(self, method, timeout=None, **kwargs):
        self.send(method, **kwargs)
        return self.receive(timeout)

    def close(self, kill=False):
        if self.process.poll() is None and not kill:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                kill = True
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(kill=exc[0] is not None)
        return False


def _die_with_parent():
    """Linux: have the kernel end this worker when the orchestrating script dies."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve(script, side):
    """Worker main loop: one JSON request a line in, one JSON reply a line out."""
    _die_with_parent()
    # Keep the protocol on a private copy of stdout; whatever the libraries print goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    spec = importlib.util.spec_from_file_location("bench_side", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    instance = getattr(module, side)()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = {"result": getattr(instance, request["method"])(**request["kwargs"])}
        except BaseException:  # noqa: BLE001 - reported to the orchestrator, which stops
            reply = {"error": traceback.format_exc()}
        protocol.write(json.dumps(reply) + "\n")
    close = getattr(instance, "close", None)
    if close is not None:
        close()


@contextmanager
def sides(script, *, peer=True, scratch):
    """``(ours, peer)`` workers for ``script`` (classes ``Ours`` and ``Peer``), closed at the end."""
    warm_bytecode(ours_python(), "ours")
    if peer:
        warm_bytecode(ensure_peer(), "mlflow")
    ours = Worker(ours_python(), script, "Ours", cwd=scratch)
    other = None
    try:
        if peer:
            other = Worker(PEER_PYTHON, script, "Peer", cwd=scratch)
        yield ours, other
    finally:
        ours.close()
        if other is not None:
            other.close()


@contextmanager
def scratch_dir():
    """A temporary folder for registries, removed afterwards."""
    folder = tempfile.mkdtemp(prefix="mlops-bench-")
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sqlite_url(path):
    return f"sqlite:///{Path(path).resolve()}"


# ---- what both sides' workers share ------------------------------------------------------

MODELS = ("rf", "lr", "gb", "svm")


def run_values(index):
    """Params and metrics of generated run ``index``, the same on both sides; auc spread over [0.5, 1)."""
    auc = 0.5 + (index * 2_654_435_761 % 1_000_003) / 2_000_006
    params = {"model": MODELS[index % 4], "lr": f"{0.001 * (1 + index % 10):g}", "depth": str(2 + index % 8)}
    metrics = {"auc": auc, "loss": 1.0 - auc + (index % 13) / 100, "acc": 0.4 + (index % 50) / 100}
    return params, metrics


def open_mlflow(url, artifacts, experiment):
    """In a Peer worker: MLflow on ``url`` (tracking and registry), quiet; ``(mlflow, experiment id)``."""
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    return mlflow, mlflow.create_experiment(experiment, artifact_location=Path(artifacts).resolve().as_uri())


# ---- statistics ---------------------------------------------------------------------------


def median(values):
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return math.nan
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values, p):
    """Linear interpolation between closest ranks (numpy's default), ``p`` in 0..100."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def timed_ms(function, *args, **kwargs):
    """``(result, milliseconds)`` of one call."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, (time.perf_counter() - started) * 1000


# ---- reporting ----------------------------------------------------------------------------


def row(what, ours, mlflow=None, *, unit="ms", target=None, limit=None, note=None, higher_is_better=False):
    """One line of a result table.

    ``ratio`` is how many times ours is faster (MLflow's time ÷ ours, or ours' rate ÷ MLflow's).
    ``limit``: the target as a number in ``unit``, met if ours is at most it (at least, for rates).
    """
    ratio = None
    if mlflow is not None and ours:
        ratio = ours / mlflow if higher_is_better else mlflow / ours
    met = None
    if limit is not None and ours is not None:
        met = ours >= limit if higher_is_better else ours <= limit
    return {"what": what, "ours": ours, "mlflow": mlflow, "unit": unit, "ratio": ratio, "target": target,
            "met": met, "note": note}


def fmt(value, unit):
    if value is None:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if unit == "ms":
        if value >= 1000:
            return f"{value / 1000:.2f} s"
        if value >= 10:
            return f"{value:.1f} ms"
        if value >= 0.1:
            return f"{value:.3f} ms"
        return f"{value * 1000:.1f} µs"
    return f"{value:,.3g} {unit}".strip()


def fmt_ratio(ratio):
    return "—" if ratio is None else (f"{ratio:,.0f}×" if ratio >= 100 else f"{ratio:.1f}×")


def markdown_table(rows, peer="MLflow"):
    lines = [
        f"| measure | ours | {peer} | ours faster by | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "—"}[r["met"]]
        what = r["what"] + (f" ({r['note']})" if r.get("note") else "")
        lines.append(
            f"| {what} | {fmt(r['ours'], r['unit'])} | {fmt(r['mlflow'], r['unit'])} | "
            f"{fmt_ratio(r['ratio'])} | {r['target'] or '—'} | {met} |"
        )
    return "\n".join(lines)


def parse_args(description, *extra):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON (run_all uses it)")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test of the script, not a figure")
    parser.add_argument("--no-peer", action="store_true", help="measure ours only (no MLflow venv)")
    for option, kwargs in extra:
        parser.add_argument(option, **kwargs)
    # Stopped (SIGTERM): unwind normally, so workers stop and temporary folders are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return parser.parse_args()


def finish(args, figure, title, rows, notes=(), command=None, peer="MLflow"):
    """Print the figure's table and notes; write them as JSON when asked. ``peer``: the other column's name."""
    command = command or ".venv/bin/python benchmarks/" + Path(sys.argv[0]).name + (" --quick" if args.quick else "") + (
        " --no-peer" if args.no_peer else "")
    result = {"figure": figure, "title": title, "command": command, "rows": rows, "notes": list(notes),
              "quick": args.quick, "load_average_after": os.getloadavg(), "peer": peer}
    print(f"\n## {figure}. {title}\n")
    print(markdown_table(rows, peer))
    for note in notes:
        print(f"- {note}")
    print("- load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    print(flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def machine():
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
    }


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def progress(label, done, total, started):
    elapsed = time.perf_counter() - started
    print(f"[{label}] {done:,}/{total:,} ({100 * done / total:.0f}%) in {elapsed:.1f} s", flush=True,
          file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
    elif sys.argv[1:] == ["ensure"]:
        print(ensure_peer())
    else:
        sys.exit("usage: _peer.py ensure | serve SCRIPT SIDE")
