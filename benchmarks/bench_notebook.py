"""Figure 6: the notebook's costs — `%load_ext mlops_jupyter`, and what `%%mlops run` adds to a cell.

Load: a fresh process per repetition creates an IPython shell (not timed) and times
`%load_ext mlops_jupyter`; MLflow has no extension, so its row is `import mlflow`, what an
MLflow notebook pays before its first call. Cells: inside one IPython shell per side, the same
cell runs bare and tracked, alternating, and the figure is the median difference. Tracked on
our side is `%%mlops run` (scikit-learn autolog on); on MLflow's, `mlflow.sklearn.autolog()` and
`with mlflow.start_run():` around the same code.
"""

import subprocess
import time

import _peer

REPETITIONS = 25
LOAD_REPETITIONS = 15
LOAD_TARGET_MS = 150
EMPTY_TARGET_MS = 20
FIT_TARGET_PERCENT = 10

SETUP = (
    "from sklearn.datasets import load_breast_cancer\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "from sklearn.preprocessing import StandardScaler\n"
    "X, y = load_breast_cancer(return_X_y=True, as_frame=True)\n"
    "X = StandardScaler().set_output(transform='pandas').fit_transform(X)\n"
)
FIT = "model = LogisticRegression(max_iter=1000).fit(X, y)"
LOAD_CODE = (
    "import time\nfrom IPython.core.interactiveshell import InteractiveShell\n"
    "from traitlets.config import Config\nc = Config(); c.HistoryAccessor.enabled = False\n"
    "shell = InteractiveShell.instance(config=c)\nstarted = time.perf_counter()\n"
    "shell.run_line_magic('load_ext', 'mlops_jupyter')\nprint((time.perf_counter() - started) * 1000)"
)


def shell():
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryAccessor.enabled = False
    return InteractiveShell.instance(config=config)


def timed_cell(run, code):
    started = time.perf_counter()
    result = run(code)
    elapsed = (time.perf_counter() - started) * 1000
    if result is not None and not result.success:
        raise RuntimeError(f"cell failed: {result.error_in_exec or result.error_before_exec}")
    return elapsed


class Ours:
    def setup(self, url):
        import contextlib
        import io

        self.shell = shell()
        self.shell.run_line_magic("load_ext", "mlops_jupyter")
        self.shell.run_line_magic("config", f"MlopsMagics.registry_url = {url!r}")
        self.shell.run_cell(SETUP)
        self.quiet = contextlib.redirect_stdout(io.StringIO())  # keep the run summaries off the protocol

    def cell(self, kind):
        run = self.shell.run_cell
        with self.quiet:
            return {
                "bare_empty": lambda: timed_cell(run, "pass"),
                "tracked_empty": lambda: timed_cell(run, "%%mlops run\npass"),
                "bare_fit": lambda: timed_cell(run, FIT),
                "tracked_fit": lambda: timed_cell(run, f"%%mlops run\n{FIT}"),
            }[kind]()


class Peer:
    def setup(self, url):
        import mlflow.sklearn

        artifacts = url.removeprefix("sqlite:///").rsplit("/", 1)[0] + "/mlflow-artifacts"
        self.mlflow, self.experiment = _peer.open_mlflow(url, artifacts, "notebook-bench")
        self.autolog = mlflow.sklearn.autolog
        self.namespace = {}
        exec(SETUP, self.namespace)

    def run(self, code):
        exec(code, self.namespace)

    def tracked(self, code):
        with self.mlflow.start_run(experiment_id=self.experiment):
            exec(code, self.namespace)

    def cell(self, kind):
        tracked = kind.startswith("tracked")
        # MLflow's autolog patches fit for every caller: switch it per cell, outside the timing.
        self.autolog(disable=not tracked, silent=True)
        code = "pass" if kind.endswith("empty") else FIT
        return timed_cell(self.tracked if tracked else self.run, code)


def load_ms(repetitions, scratch):
    samples = []
    for _ in range(repetitions):
        done = subprocess.run([str(_peer.ours_python()), "-c", LOAD_CODE], capture_output=True, text=True,
                              check=True, cwd=scratch, env=_peer.worker_env(), timeout=120)
        samples.append(float(done.stdout.strip().splitlines()[-1]))
    return samples


def import_mlflow_ms(repetitions, scratch):
    code = "import time\nstarted = time.perf_counter()\nimport mlflow\nprint((time.perf_counter() - started) * 1000)"
    samples = []
    for _ in range(repetitions):
        done = subprocess.run([str(_peer.PEER_PYTHON), "-c", code], capture_output=True, text=True, check=True,
                              cwd=scratch, env=_peer.worker_env(), timeout=120)
        samples.append(float(done.stdout.strip().splitlines()[-1]))
    return samples


def main():
    args = _peer.parse_args(__doc__.splitlines()[0])
    repetitions = 4 if args.quick else REPETITIONS
    kinds = ("bare_empty", "tracked_empty", "bare_fit", "tracked_fit")
    samples = {side: {kind: [] for kind in kinds} for side in ("ours", "mlflow")}
    with _peer.scratch_dir() as scratch, _peer.sides(__file__, peer=not args.no_peer, scratch=scratch) as (ours, peer):
        loads = load_ms(3 if args.quick else LOAD_REPETITIONS, scratch)
        imports = import_mlflow_ms(3 if args.quick else LOAD_REPETITIONS, scratch) if peer else []
        print(f"[notebook] %load_ext median {_peer.median(loads):.1f} ms", flush=True)
        ours.call("setup", url=_peer.sqlite_url(scratch / "ours.db"))
        workers = [("ours", ours)]
        if peer:
            (scratch / "mlflow-artifacts").mkdir()
            peer.call("setup", url=_peer.sqlite_url(scratch / "mlflow.db"))
            workers.append(("mlflow", peer))
        for _, worker in workers:  # first calls pay for lazy imports and compiled statements
            for kind in kinds:
                worker.call("cell", kind=kind)
        for index in range(repetitions):
            for side, worker in workers if index % 2 == 0 else reversed(workers):
                for kind in kinds:
                    samples[side][kind].append(worker.call("cell", kind=kind))
            if (index + 1) % 5 == 0:
                print(f"[notebook] {index + 1}/{repetitions} rounds", flush=True)

    def median(side, kind):
        return _peer.median(samples[side][kind]) if samples[side][kind] else None

    def overhead(side, base, tracked):
        if not samples[side][base]:
            return None
        return _peer.median([t - b for b, t in zip(samples[side][base], samples[side][tracked])])

    def percent(side):
        extra = overhead(side, "bare_fit", "tracked_fit")
        return None if extra is None else 100 * extra / median(side, "bare_fit")

    rows = [
        _peer.row("`%load_ext mlops_jupyter` in a fresh process (MLflow: `import mlflow`)", _peer.median(loads),
                  _peer.median(imports) if imports else None, target=f"≤ {LOAD_TARGET_MS} ms", limit=LOAD_TARGET_MS),
        _peer.row("tracked empty cell, added time", overhead("ours", "bare_empty", "tracked_empty"),
                  overhead("mlflow", "bare_empty", "tracked_empty"), target=f"≤ {EMPTY_TARGET_MS} ms",
                  limit=EMPTY_TARGET_MS),
        _peer.row("LogisticRegression fit cell, bare", median("ours", "bare_fit"), median("mlflow", "bare_fit"),
                  note="for information"),
        _peer.row("same cell tracked with sklearn autolog, added time", overhead("ours", "bare_fit", "tracked_fit"),
                  overhead("mlflow", "bare_fit", "tracked_fit")),
        _peer.row("same, added time as % of the bare cell", percent("ours"), percent("mlflow") if peer else None,
                  unit="%", target=f"≤ {FIT_TARGET_PERCENT} %", limit=FIT_TARGET_PERCENT),
    ]
    notes = [
        f"{repetitions} alternating rounds per side after one warm-up round; each round runs the four cells in turn. "
        "Added time is the median of (tracked − bare) within a round.",
        "Ours: `%%mlops run` starts and ends a durable run, captures the cell's code, git commit and packages, "
        "autologs the fit (params, training score, fingerprints of X and y) and renders the run summary. MLflow: "
        "`mlflow.sklearn.autolog()` with `mlflow.start_run()`, its default autolog (which also saves the model).",
        "The data: scikit-learn's breast cancer set (569 × 30), standardised.",
    ]
    _peer.finish(args, 6, "Notebook: loading the extension and tracking a cell", rows, notes)


if __name__ == "__main__":
    main()
