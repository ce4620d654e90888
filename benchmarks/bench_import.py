"""Figure 1: the cost of ``import mlops_jupyter`` in a fresh process, against ``import mlflow``.

Each repetition starts a fresh interpreter for: a bare start (``-c pass``) and the import, on
each side's own venv python, in alternating order. The import's cost is the median wall time
of the import process minus the median of the bare start of the same python. ``-X importtime``
is run too, for the interpreter's own account of the package's cumulative import time.
"""

import re
import subprocess
import time

import _peer

REPETITIONS = 15
IMPORTTIME_REPETITIONS = 5  # -X importtime is a second account, not the figure
TARGET_MS = 50

# (label, what is imported) per side; the first is the figure, the rest are for information.
OURS = [
    ("import mlops_jupyter", "import mlops_jupyter", "mlops_jupyter"),
    ("first use: import mlops_jupyter.api (what connect() loads)", "import mlops_jupyter.api", "mlops_jupyter.api"),
]
PEER = [("import mlflow", "import mlflow", "mlflow")]


def wall_ms(python, code, scratch):
    started = time.perf_counter()
    subprocess.run([str(python), "-c", code], check=True, cwd=scratch, env=_peer.worker_env(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return (time.perf_counter() - started) * 1000


def importtime_ms(python, code, module, scratch):
    """The cumulative time ``-X importtime`` reports for ``module`` itself."""
    done = subprocess.run([str(python), "-X", "importtime", "-c", code], check=True, cwd=scratch,
                          env=_peer.worker_env(), capture_output=True, text=True, timeout=120)
    pattern = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s*(\S+)\s*$")
    for line in done.stderr.splitlines():
        found = pattern.match(line)
        if found and found.group(3) == module:
            return int(found.group(2)) / 1000
    raise RuntimeError(f"-X importtime printed no line for {module}")


def main():
    args = _peer.parse_args(__doc__.splitlines()[0])
    repetitions = 3 if args.quick else REPETITIONS
    pythons = {"ours": _peer.ours_python()}
    if not args.no_peer:
        pythons["mlflow"] = _peer.ensure_peer()
    cases = [("ours", *case) for case in OURS] + ([("mlflow", *case) for case in PEER] if not args.no_peer else [])
    samples = {key: [] for key in [("bare", side) for side in pythons] + [(c[1], c[0]) for c in cases]}
    importtimes = {(c[1], c[0]): [] for c in cases}
    for side, python in pythons.items():
        _peer.warm_bytecode(python, side)
    with _peer.scratch_dir() as scratch:
        for side, python in pythons.items():  # warm the disk cache and the .pyc files first
            wall_ms(python, "pass", scratch)
            for case in cases:
                if case[0] == side:
                    wall_ms(python, case[2], scratch)
        for repetition in range(repetitions):
            order = [("bare", side, "pass", None) for side in pythons] + [(c[1], c[0], c[2], c[3]) for c in cases]
            if repetition % 2:
                order.reverse()
            for label, side, code, module in order:
                samples[(label, side)].append(wall_ms(pythons[side], code, scratch))
                if module is not None and repetition < IMPORTTIME_REPETITIONS:
                    importtimes[(label, side)].append(importtime_ms(pythons[side], code, module, scratch))
            print(f"[import] repetition {repetition + 1}/{repetitions}", flush=True)

    def cost(label, side):
        return _peer.median(samples[(label, side)]) - _peer.median(samples[("bare", side)])

    figure_ours = cost(OURS[0][0], "ours")
    figure_peer = cost(PEER[0][0], "mlflow") if not args.no_peer else None
    rows = [
        _peer.row("`import mlops_jupyter` vs `import mlflow`, wall time minus bare interpreter start",
                  figure_ours, figure_peer, target=f"≤ {TARGET_MS} ms", limit=TARGET_MS),
        _peer.row("same, cumulative time by `-X importtime`",
                  _peer.median(importtimes[(OURS[0][0], "ours")]),
                  _peer.median(importtimes[(PEER[0][0], "mlflow")]) if not args.no_peer else None),
        _peer.row("`import mlops_jupyter.api` (loaded by the first `connect()`), wall minus bare",
                  cost(OURS[1][0], "ours"), figure_peer, note="for information"),
        _peer.row("bare interpreter start of each venv's python",
                  _peer.median(samples[("bare", "ours")]),
                  _peer.median(samples[("bare", "mlflow")]) if not args.no_peer else None,
                  note="subtracted above"),
    ]
    notes = [
        f"{repetitions} fresh processes per case (and {min(repetitions, IMPORTTIME_REPETITIONS)} more with "
        "`-X importtime`), ours and MLflow alternating; medians. Bytecode is cached for both sides "
        "(see `PYCACHE` in `_peer.py`).",
        "`import mlops_jupyter` loads only the package's `__init__` (the API loads on first attribute use); "
        "the `mlops_jupyter.api` row is the cost a notebook pays at its first `connect()` or `start_run()`, "
        "compared with `import mlflow`, which is the whole cost on that side.",
    ]
    _peer.finish(args, 1, "Import time in a fresh process", rows, notes)


if __name__ == "__main__":
    main()
