"""A real JupyterLab with the mlops extension, driven by Debian's Chromium through Playwright.

Shared by ``tests/test_browser.py`` and ``benchmarks/bench_sidebar.py``:

- ``fill_registry(url)``: a small registry through the Python API (experiments with runs, two
  models with versions and aliases); ``fill_bulk(url)``: 10,000 runs and 200 model versions.
- ``JupyterLab``: ``jupyter lab`` as a subprocess on 127.0.0.1 and a free port, with its own
  token, ``MLOPS_REGISTRY_URL`` pointing at the registry, HOME and every Jupyter folder inside a
  temporary folder (no user settings leak in); stopped with its kernels.
- ``launch_chromium``, ``open_lab``, ``open_sidebar`` …: the browser side.

Playwright cannot download its browsers on these machines, so it drives ``/usr/bin/chromium``.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

CHROMIUM = Path(os.environ.get("MLOPS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
# Screenshots of the last browser run are kept here for a reviewer, whatever the test's tmp folder.
SCREENSHOTS = Path("/tmp/mlops-browser-screenshots")
VIEWPORT = {"width": 1400, "height": 900}
LAB_START_TIMEOUT_S = 90
UI_TIMEOUT_MS = 60_000  # a loaded 2-core machine can take a while to build the JupyterLab page
SIDEBAR = "#mlops-sidebar"
SIDEBAR_TAB = 'li[data-id="mlops-sidebar"]'
BIN = Path(sys.executable).parent

# Settings a fresh JupyterLab would otherwise interrupt the tests with (the news/update toast).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False,
    },
}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- registries ---------------------------------------------------------------------------

def _training_data():
    import numpy as np

    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [4.0, 1.0], [5.0, 0.0]])
    y = np.array([0, 0, 0, 1, 1, 1])
    return X, y


SMALL_RUNS = {  # experiment -> [(run name, auc)]
    "churn": [("baseline-logreg", 0.71), ("rf-depth-4", 0.78), ("rf-depth-8", 0.83)],
    "fraud": [("fraud-gbm", 0.88), ("fraud-logreg", 0.81)],
}


def fill_registry(url):
    """Experiments 'churn' (3 runs) and 'fraud' (2 runs); model 'churn' v1 staging, v2 production;
    model 'fraud' v1 production (auc 0.81), v2 without alias (auc 0.88), all through the API."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    from mlops_jupyter import api

    api.connect(url)
    try:
        for experiment, runs in SMALL_RUNS.items():
            api.set_experiment(experiment)
            for name, auc in runs:
                api.start_run(name, code="")
                api.log_params({"model": name.split("-")[0]})
                api.log_metrics({"auc": auc, "loss": round(1 - auc, 3)})
                api.end_run()
        X, y = _training_data()
        api.set_experiment("training")
        for model_name, models in (
            ("churn", [(0.75, LogisticRegression()), (0.8, DecisionTreeClassifier(max_depth=2))]),
            ("fraud", [(0.81, LogisticRegression(C=0.5)), (0.88, DecisionTreeClassifier(max_depth=3))]),
        ):
            for auc, model in models:
                api.start_run(f"train-{model_name}", code="")
                api.log_metrics({"auc": auc})
                api.register_model(model.fit(X, y), model_name, primary_metric="auc")
                api.end_run()
        api.promote("churn", 1, "staging", reason="first candidate")
        api.promote("churn", 2, "production", reason="better auc")
        api.promote("fraud", 1, "production", reason="first model")
    finally:
        api.disconnect()


BULK_EXPERIMENT = "bulk"
BULK_CHUNK = 5_000


def fill_bulk(url, runs=10_000, versions=200, models=20):
    """``runs`` finished runs in experiment 'bulk' (auc, loss, two params each) and ``versions``
    model versions spread over ``models`` models, each model with staging and production aliases.

    The first run goes through the API; the rest are bulk-inserted copies of its row (own id,
    name, times, params, metrics), a transaction per 5,000 runs: through the API 10,000 runs take
    about 20 s here, this about 2 s. The model versions go through ``api.register_model``.
    Returns the seconds it took.
    """
    import sqlalchemy as sa
    from sklearn.linear_model import LogisticRegression

    from mlops_jupyter import api
    from mlops_jupyter.registry import database
    from mlops_jupyter.registry.schema import metrics, params
    from mlops_jupyter.registry.schema import runs as runs_table

    started = time.perf_counter()
    registry = api.connect(url)
    try:
        api.set_experiment(BULK_EXPERIMENT)
        first = api.start_run("bulk-00000", code="")
        api.log_params({"model": "rf", "depth": "4"})
        api.log_metrics({"auc": 0.5, "loss": 0.5})
        api.end_run()
        engine = registry.store.engine
        with engine.connect() as connection:
            template = dict(connection.execute(
                sa.select(runs_table).where(runs_table.c.id == first.id)).mappings().one())
        base = template["start_time"]
        with engine.connect() as connection:
            for chunk_start in range(1, runs, BULK_CHUNK):
                run_rows, param_rows, metric_rows = [], [], []
                for index in range(chunk_start, min(chunk_start + BULK_CHUNK, runs)):
                    run_id = uuid.uuid4().hex
                    start = base + index
                    run_rows.append({**template, "id": run_id, "name": f"bulk-{index:05d}",
                                     "start_time": start, "end_time": start + 1})
                    auc = (index % 1000) / 1000
                    param_rows += [
                        {"run_id": run_id, "key": "model", "value": "rf" if index % 2 else "lr", "value_number": None},
                        {"run_id": run_id, "key": "depth", "value": str(index % 10), "value_number": index % 10},
                    ]
                    metric_rows += [{"run_id": run_id, "key": "auc", "value": auc, "step": 0, "timestamp": start},
                                    {"run_id": run_id, "key": "loss", "value": 1 - auc, "step": 0, "timestamp": start}]
                with database.begin(connection, write=True):
                    connection.execute(sa.insert(runs_table), run_rows)
                    connection.execute(sa.insert(params), param_rows)
                    connection.execute(sa.insert(metrics), metric_rows)
        X, y = _training_data()
        per_model = versions // models
        # A model may not hold the same fitted model twice: one fit per version number, shared by the models.
        fitted = [LogisticRegression(C=0.1 * (v + 1)).fit(X, y) for v in range(per_model)]
        for m in range(models):
            name = f"model-{m:02d}"
            for v in range(per_model):
                api.register_model(fitted[v], name, description=f"version {v + 1} of {name}")
            api.promote(name, per_model - 1, "staging")
            api.promote(name, per_model, "production")
    finally:
        api.disconnect()
    return time.perf_counter() - started


# ---- the server ---------------------------------------------------------------------------

class JupyterLab:
    """``jupyter lab`` on 127.0.0.1 serving ``root``, with the registry at ``registry_url``.

    Everything the server and its kernels write (HOME, Jupyter config/data/runtime, lab
    settings and workspaces, IPython) lives under ``state``, so no user setting leaks in.
    """

    def __init__(self, root, state, registry_url, *, user="browser-test"):
        self.root, self.state = Path(root), Path(state)
        self.registry_url = registry_url
        self.user = user
        self.port = free_port()
        self.token = uuid.uuid4().hex
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None
        self.log_path = self.state / "jupyter-lab.log"

    def environment(self):
        folders = {
            "HOME": "home", "JUPYTER_CONFIG_DIR": "jupyter/config", "JUPYTER_DATA_DIR": "jupyter/data",
            "JUPYTER_RUNTIME_DIR": "jupyter/runtime", "JUPYTERLAB_SETTINGS_DIR": "lab/user-settings",
            "JUPYTERLAB_WORKSPACES_DIR": "lab/workspaces", "IPYTHONDIR": "ipython",
        }
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("JUPYTER", "MLOPS_", "IPYTHON"))}
        for variable, relative in folders.items():
            path = self.state / relative
            path.mkdir(parents=True, exist_ok=True)
            env[variable] = str(path)
        env.update({
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "MLOPS_REGISTRY_URL": self.registry_url,
            "MLOPS_USER": self.user,
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def _write_settings(self, env):
        settings = Path(env["JUPYTERLAB_SETTINGS_DIR"])
        for relative, values in LAB_SETTINGS.items():
            path = settings / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))

    def start(self):
        """Launch the server and wait until it answers; ``launch()`` + ``wait_ready()``."""
        self.launch()
        return self.wait_ready()

    def launch(self):
        """Start ``jupyter lab`` without waiting for it (fill the registry meanwhile)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        self._write_settings(env)
        command = [
            str(BIN / "jupyter"), "lab", "--no-browser", "--ip", "127.0.0.1", f"--port={self.port}",
            "--port-retries=0", f"--IdentityProvider.token={self.token}", "--allow-root",
            f"--ServerApp.root_dir={self.root}",
            # window.jupyterapp, only to wait for a kernel to be idle; users' actions go through the UI.
            "--LabApp.expose_app_in_browser=True",
        ]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, env=env, cwd=self.root, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self._deadline = time.monotonic() + LAB_START_TIMEOUT_S
        return self

    def wait_ready(self):
        """Wait until the server and its mlops extension answer; fail with the server's log if not."""
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                status, _ = self.request("/api/status")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > self._deadline:
                self.stop()
                raise RuntimeError(f"jupyter lab did not answer within {LAB_START_TIMEOUT_S} s:\n{self.log_tail()}")
            time.sleep(0.2)
        status, body = self.request("/mlops/api/status")
        if status != 200:
            self.stop()
            raise RuntimeError(f"the mlops server extension did not answer /mlops/api/status ({status}): {body!r}\n"
                               f"{self.log_tail()}")
        return self

    def request(self, path, method="GET", body=None):
        """(status, parsed JSON or text) of a request with the token."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw or b"null")
        except ValueError:
            return status, raw.decode(errors="replace")

    def lab_url(self, workspace=None):
        """The page to open: a workspace of its own per test, so no test restores another's tabs."""
        where = f"/lab/workspaces/{workspace}" if workspace else "/lab"
        return f"{self.url}{where}?token={self.token}"

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _kernel_pids(self):
        """Processes started with a connection file in this server's runtime folder: its kernels."""
        runtime = str(self.state / "jupyter" / "runtime")
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                if runtime in cmdline and "kernel" in cmdline:
                    pids.append(int(entry.name))
        return pids

    def stop(self):
        """Shut the server down through its API (which stops its kernels), then make sure."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.request("/api/shutdown", method="POST")
            except OSError:
                pass
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()
        for pid in self._kernel_pids():  # kernels run in sessions of their own
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---- the browser --------------------------------------------------------------------------

def launch_chromium(playwright, headless=True):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=headless)


def new_page(browser):
    """A page in a context of its own, recording console errors (``page.mlops_errors``)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    page.mlops_errors = []
    page.on("console", lambda m: m.type == "error" and page.mlops_errors.append(m.text))
    page.on("pageerror", lambda e: page.mlops_errors.append(str(e)))
    return page


def open_lab(page, lab, workspace=None):
    """Open JupyterLab (logged in by ?token=) and wait until it is usable."""
    page.goto(lab.lab_url(workspace))
    wait_for_lab(page)


def wait_for_lab(page):
    page.wait_for_selector("#jp-main-dock-panel", state="visible")
    page.wait_for_selector("#jupyterlab-splash", state="detached")
    page.wait_for_selector(SIDEBAR_TAB, state="visible")


def open_sidebar(page):
    """Click the MLOps tab and wait for the panel's first data (``data-mlops-ready="true"``)."""
    page.click(SIDEBAR_TAB)
    page.wait_for_selector(f'{SIDEBAR}[data-mlops-ready="true"]', state="visible")
    return page.locator(SIDEBAR)


def sidebar_is_open(page):
    return page.locator(SIDEBAR_TAB).get_attribute("aria-selected") == "true" and page.locator(SIDEBAR).is_visible()


def close_sidebar(page):
    if sidebar_is_open(page):
        page.click(SIDEBAR_TAB)
        page.wait_for_selector(SIDEBAR, state="hidden")


def run_command(page, label):
    """Run a command the way a user would: the command palette, its label, Enter."""
    page.keyboard.press("Control+Shift+C")
    search = page.locator(".lm-CommandPalette-input")
    search.wait_for(state="visible")
    search.fill(label)
    # Enter on the active item, not a click: the palette re-renders whenever any command's state
    # changes (a kernel starting, say), detaching the item under the pointer again and again.
    page.locator(".lm-CommandPalette-item.lm-mod-active", has_text=label).first.wait_for(state="visible")
    search.press("Enter")


def open_file(page, lab, workspace, path):
    """Open ``path`` (relative to the server root) in a workspace of its own."""
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{path}?token={lab.token}")
    wait_for_lab(page)


def wait_for_kernel_idle(page):
    """The open notebook's kernel started and idle (the toolbar's status reads 'Idle')."""
    page.wait_for_function(
        """() => {
            const panel = window.jupyterapp.shell.currentWidget;
            const kernel = panel && panel.sessionContext && panel.sessionContext.session
                && panel.sessionContext.session.kernel;
            return kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected';
        }""",
        timeout=UI_TIMEOUT_MS,
    )


def screenshot(page, folder, name, locator=None):
    """A PNG in ``folder`` and a copy in SCREENSHOTS; returns the path in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    (locator or page).screenshot(path=str(path))
    if folder.resolve() != SCREENSHOTS.resolve():
        (SCREENSHOTS / path.name).write_bytes(path.read_bytes())
    return path


# ---- the first-paint measurement ----------------------------------------------------------

# Installed before the tab is clicked: stamps the pointerdown on the tab, the panel's
# data-mlops-ready="true", and the first page of runs after the experiment row is clicked,
# each as performance.now() in the page, taken in the next animation frame (painted).
_WATCH = """(experiment) => {
    const marks = window.__mlopsMarks = {};
    const frame = (name) => requestAnimationFrame(() => { marks[name] = performance.now(); });
    document.querySelector('li[data-id="mlops-sidebar"]').addEventListener(
        'pointerdown', () => { marks.tabDown = performance.now(); }, {capture: true, once: true});
    const observer = new MutationObserver(() => {
        const panel = document.getElementById('mlops-sidebar');
        if (!panel) return;
        if (!('ready' in marks) && panel.getAttribute('data-mlops-ready') === 'true'
            && panel.querySelector(`[data-mlops-experiment="${experiment}"]`)) {
            marks.ready = performance.now();
            frame('readyPainted');
            panel.querySelector(`[data-mlops-experiment="${experiment}"]`).addEventListener(
                'pointerdown', () => { marks.rowDown = performance.now(); }, {capture: true, once: true});
        }
        if ('rowDown' in marks && !('runs' in marks)
            && panel.querySelectorAll('[data-mlops-run]').length >= 50) {
            marks.runs = performance.now();
            frame('runsPainted');
            observer.disconnect();
        }
    });
    observer.observe(document.body, {subtree: true, childList: true, attributes: true,
                                     attributeFilter: ['data-mlops-ready']});
}"""


def measure_first_paint(page, lab, workspace, experiment=BULK_EXPERIMENT):
    """One opening on a freshly loaded page, the panel never opened before: ms from the tab's
    pointerdown to the panel painted ready, and to the experiment's first page of 50 runs painted
    after a click on its row. Also the panel's own ``data-mlops-load-ms``. ``workspace`` must be
    new (a workspace that had the panel open would restore it open). Leaves the panel closed."""
    open_lab(page, lab, workspace)
    if sidebar_is_open(page) or page.locator(SIDEBAR).get_attribute("data-mlops-ready") is not None:
        raise RuntimeError(f"workspace {workspace!r} opened the MLOps panel before the measurement: use a new one")
    page.evaluate(_WATCH, experiment)
    page.click(SIDEBAR_TAB)
    page.wait_for_function("() => window.__mlopsMarks && 'readyPainted' in window.__mlopsMarks")
    page.click(f'{SIDEBAR} [data-mlops-experiment="{experiment}"]')
    page.wait_for_function("() => 'runsPainted' in window.__mlopsMarks")
    marks = page.evaluate("() => window.__mlopsMarks")
    load_ms = page.locator(SIDEBAR).get_attribute("data-mlops-load-ms")
    rows = page.locator(f"{SIDEBAR} [data-mlops-run]").count()
    close_sidebar(page)
    return {
        "ready_ms": marks["readyPainted"] - marks["tabDown"],
        "runs_ms": marks["runsPainted"] - marks["rowDown"],
        "total_ms": (marks["readyPainted"] - marks["tabDown"]) + (marks["runsPainted"] - marks["rowDown"]),
        "panel_load_ms": float(load_ms) if load_ms else None,
        "run_rows": rows,
    }
