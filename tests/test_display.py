"""The views the %mlops magics show: HTML from real registry data, and the live widget panels."""

import base64
import pickle
import re
import sys

import pandas
import pytest
from IPython.core.formatters import DisplayFormatter

import mlops_jupyter as mlops
from mlops_jupyter import api
from mlops_jupyter.errors import InvalidInput
from mlops_jupyter.jupyter import display
from mlops_jupyter.jupyter.display import WIDGET_MIME

# Run names cannot hold '/', so the script tag goes into a param value and the name gets another payload.
EVIL = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def reg(tmp_path):
    return mlops.connect(f"sqlite:///{tmp_path / 'r.db'}", artifacts=str(tmp_path / "artifacts"))


@pytest.fixture
def two_runs(reg):
    """Two finished runs with a 3-step auc curve, a differing and a shared param."""
    runs = []
    for name, model, aucs in (("forest", "rf", (0.7, 0.8, 0.91234)), (EVIL, "lr", (0.6, 0.7, 0.75))):
        with mlops.start_run(name, experiment="churn") as run:
            mlops.log_params({"model": model, "seed": 1, "note": SCRIPT if name == EVIL else "plain"})
            for step, auc in enumerate(aucs):
                mlops.log_metric("auc", auc, step=step)
            mlops.log_metric("loss", 1 - aucs[-1])
        runs.append(run)
    return runs


@pytest.fixture
def model_two_versions(reg):
    """Model 'm': v1 from a run with auc 0.9, v2 from a worse run with auc 0.8."""
    for auc in (0.9, 0.8):
        with mlops.start_run(f"auc{auc}") as run:
            mlops.log_metric("auc", auc)
        mlops.register_model({"weights": [auc]}, "m", run=run)
    return "m"


def html_of(view):
    return view._repr_mimebundle_()["text/html"]


def alias_version(reference):
    try:
        return mlops.get_model_version(reference)["version"]
    except mlops.NotFound:
        return None


# ---- without a kernel ---------------------------------------------------------------------


def test_is_live_kernel():
    class Shell:
        kernel = object()

    class TerminalShell:
        pass

    assert display.is_live_kernel(Shell())
    assert not display.is_live_kernel(TerminalShell())
    assert not display.is_live_kernel(None)


def test_module_import_is_light():
    import subprocess

    code = (
        "import sys, mlops_jupyter.jupyter.display; "
        "print([m for m in ('pandas', 'matplotlib', 'ipywidgets') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_runs_view_shows_values_and_escapes(two_runs):
    frame = mlops.search_runs()
    view = display.runs_frame_view(frame)
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    page = bundle["text/html"]
    assert EVIL not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert SCRIPT not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert two_runs[0].id[:8] in page and two_runs[0].id not in re.sub(r'title="[^"]*"', "", page)
    assert "0.9123" in page and "0.91234" not in page  # 4 significant digits
    assert "FINISHED" in page and display._STATUS_COLOURS["FINISHED"] in page
    assert "forest" in bundle["text/plain"] and "auc=0.9123" in bundle["text/plain"]
    # newest first, as given
    assert page.index(two_runs[1].id[:8]) < page.index(two_runs[0].id[:8])


def test_runs_view_caps_rows(reg):
    for index in range(4):
        with mlops.start_run(f"r{index}"):
            pass
    page = html_of(display.runs_frame_view(mlops.search_runs(), limit=3))
    assert "… 1 more" in page
    assert ">r0<" not in page and ">r3<" in page
    assert "No runs" in html_of(display.runs_frame_view(mlops.search_runs("name = 'nope'")))


def test_failed_run_status_is_coloured(reg):
    with pytest.raises(RuntimeError), mlops.start_run("broken"):
        raise RuntimeError("boom")
    page = html_of(display.runs_frame_view(mlops.search_runs()))
    assert "FAILED" in page and display._STATUS_COLOURS["FAILED"] in page


def test_rich_frame_is_a_dataframe_whose_derivatives_are_plain(two_runs):
    frame = mlops.search_runs()
    rich = display.rich_frame(frame, lambda f: display.runs_frame_view(f, limit=10))
    assert isinstance(rich, pandas.DataFrame)
    pandas.testing.assert_frame_equal(pandas.DataFrame(rich), frame)
    derived = [
        rich[["name", "status"]],
        rich.iloc[:1],
        rich.loc[rich["status"] == "FINISHED"],
        rich.head(1),
        rich.copy(),
        rich[["metrics.auc", "metrics.loss"]] * 2,
        rich.sort_values("metrics.auc"),
        pickle.loads(pickle.dumps(rich)),
    ]
    for result in derived:
        assert type(result) is pandas.DataFrame
    assert type(rich["name"]) is pandas.Series
    # Jupyter shows the view, not the DataFrame's own table
    shown, _ = DisplayFormatter().format(rich)
    assert shown["text/html"] == html_of(display.runs_frame_view(frame, limit=10))
    assert "&lt;script&gt;" in rich._repr_html_() and SCRIPT not in rich._repr_html_()
    # print() and repr() stay the DataFrame's
    assert repr(rich) == repr(frame)


def test_rich_frame_falls_back_to_the_dataframe_when_the_view_fails(two_runs):
    def broken(_):
        raise RuntimeError("no view")

    rich = display.rich_frame(mlops.search_runs(), broken)
    bundle = rich._repr_mimebundle_()
    assert "<table" in bundle["text/html"] and "forest" in bundle["text/html"] and "2 rows" in bundle["text/plain"]


def test_run_summary_view(reg, tmp_path):
    (tmp_path / "model.txt").write_text("weights")
    with mlops.start_run(EVIL) as run:
        mlops.log_params({f"p{i}": i for i in range(9)})
        mlops.log_metrics({"auc": 0.912345, "loss": 0.25})
        mlops.log_dataset(pandas.DataFrame({"x": range(5), "y": range(5)}), "train")
        mlops.log_artifact(tmp_path / "model.txt")
    view = display.run_summary_view(mlops.get_run(run.id), duration=75)
    bundle = view._repr_mimebundle_()
    page = bundle["text/html"]
    assert EVIL not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    for expected in ("FINISHED", run.id[:8], "default", "1 min 15 s", "0.9123", "9 params", "p0=0",
                     "… 3 more", "train (training) 5 × 2", "model.txt (7 B)"):
        assert expected in page, expected
    assert "auc=0.9123" in bundle["text/plain"] and "1 min 15 s" in bundle["text/plain"]
    # without duration=, it comes from the run's own times
    assert " s" in display.run_summary_view(mlops.get_run(run.id)).text()


def test_compare_view_params_metrics_and_curves(two_runs):
    recorded = [mlops.get_run(r.id) for r in two_runs]
    histories = {r["id"]: {k: mlops.get_metric_history(r["id"], k) for k in r["metrics"]} for r in recorded}
    had_pyplot = "matplotlib.pyplot" in sys.modules
    view = display.compare_view(recorded, histories)
    page = html_of(view)
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules
    assert EVIL not in page and SCRIPT not in page and "&lt;img" in page and "&lt;script&gt;" in page
    rows = {re.search(r"<td[^>]*>([^<]*)</td>", row).group(1): row for row in page.split("<tr>")[1:] if "<td" in row}
    assert display._CSS["diff"] in rows["model"] and ">rf<" in rows["model"] and ">lr<" in rows["model"]
    assert display._CSS["diff"] not in rows["seed"]
    # best: higher auc (the first run), lower loss (also the first run)
    assert re.search(r"0\.9123 ★", rows["auc"]) and "0.75 ★" not in rows["auc"]
    assert "0.08766 ★" in rows["loss"]
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 1  # auc has 3 steps, loss just 1
    assert base64.b64decode(images[0]).startswith(b"\x89PNG")
    assert "3 params (2 differ)" in view.text()


def test_models_and_versions_html(model_two_versions):
    mlops.promote("m", 1, to="production", reason=SCRIPT)
    models = display.models_view(mlops.list_models())
    page = html_of(models)
    assert ">m<" in page and "production v1" in page and display._ALIAS_COLOURS["production"] in page
    versions = display.versions_view("m", mlops.list_versions("m"), mlops.model_history("m"))
    page = html_of(versions)
    assert ">v2<" in page and ">v1<" in page and "auc=0.9" in page and "auc=0.8" in page
    assert SCRIPT not in page and "&lt;script&gt;" in page  # the recorded reason
    assert "— → v1" in page
    assert "v1 [production]" in versions.text()
    assert "No registered models" in html_of(display.models_view([]))
    escaped = html_of(display.models_view([{"name": "<b>x</b>", "latest_version": 1, "aliases": {"<i>": 1}}]))
    assert "<b>x</b>" not in escaped and "&lt;i&gt;" in escaped


def test_status_view():
    view = display.status_view({
        "registry": "sqlite:///tmp/<r>.db",
        "artifacts": "/tmp/a",
        "user": "tester",
        "experiment": "churn",
        "active_run": {"id": "abcdef1234567890", "name": "first"},
        "counts": {"runs": 3, "experiments": 1, "registered_models": 2, "model_versions": 4},
    })
    page = html_of(view)
    assert "sqlite:///tmp/&lt;r&gt;.db" in page and "first (abcdef12)" in page
    assert "3 runs" in page and "2 models" in page and "4 versions" in page
    assert "churn" in view.text()
    assert "none" in display.status_view({"user": "u", "active_run": None}).text()


def test_progress_counts_quietly(capsys):
    with display.Progress(3, "loading", live=False) as progress:
        for _ in range(3):
            progress.update()
    assert progress.done == 3 and progress.finished and progress.widget is None
    assert capsys.readouterr() == ("", "")


def test_live_progress_bar(monkeypatch):
    shown = []

    class Handle:
        def update(self, obj):
            shown.append(obj)

    def fake_display(obj, display_id=None):
        shown.append(obj)
        return Handle()

    monkeypatch.setattr("IPython.display.display", fake_display)
    with display.Progress(2, "loading", live=True) as progress:
        progress.update()
        assert progress.bar.value == 1 and progress.label.value == "loading 1/2"
        progress.update()
    assert progress.bar.bar_style == "success" and progress.done == 2
    assert len(shown) == 2  # shown at the start, updated at the end
    final = shown[-1]._repr_mimebundle_()
    assert WIDGET_MIME in final and "loading 2/2 ✓" in final["text/html"] and final["text/plain"] == "loading 2/2 ✓"

    with pytest.raises(KeyError), display.Progress(3, "failing", live=True) as progress:
        progress.update()
        raise KeyError("x")
    assert progress.bar.bar_style == "danger" and "stopped" in progress.label.value


# ---- live panels --------------------------------------------------------------------------


def test_runs_panel_refresh_filter_and_sort(two_runs):
    calls = []

    def query(filter, order_by):
        calls.append((filter, order_by))
        return mlops.search_runs(filter, order_by=order_by)

    view = display.runs_frame_view(mlops.search_runs(), live=True, query=query)
    bundle = view._repr_mimebundle_()
    assert WIDGET_MIME in bundle and "text/html" in bundle
    assert bundle[WIDGET_MIME]["model_id"] == view.widget.model_id

    view.filter.value = "metrics.auc >>"  # submitting the filter refreshes
    assert "invalid filter" in view.message and "invalid filter" in view.status.value
    view.refresh_button.click()
    assert "invalid filter" in view.status.value

    view.filter.value = "params.model = 'rf'"
    view.refresh_button.click()
    assert view.message == "" and view.status.value == ""
    assert "forest" in view.table.value and "&lt;img" not in view.table.value

    view.filter.value = ""
    assert "metrics.auc" in [value for _, value in view.sort.options]
    view.direction.value = "asc"
    view.sort.value = "metrics.auc"
    assert calls[-1] == (None, "metrics.auc asc")
    assert view.table.value.index(two_runs[1].id[:8]) < view.table.value.index(two_runs[0].id[:8])


def test_runs_panel_shows_any_query_error(two_runs):
    def query(filter, order_by):
        raise mlops.NotFound("no experiment 'gone'")

    view = display.runs_frame_view(mlops.search_runs(), live=True, query=query)
    view.widget.children[0].children[-1].click()  # the Refresh button
    assert "no experiment &#x27;gone&#x27;" in view.status.value


def test_compare_panel_picks_a_curve(two_runs):
    recorded = [mlops.get_run(r.id) for r in two_runs]
    for run in recorded:
        with mlops.start_run(run["id"][:8] + "x"):
            pass
    histories = {r["id"]: {k: mlops.get_metric_history(r["id"], k) for k in r["metrics"]} for r in recorded}
    histories[recorded[0]["id"]]["loss"] = [(0, 0.5, 0.0), (1, 0.3, 1.0)]
    view = display.compare_view(recorded, histories, live=True)
    assert WIDGET_MIME in view._repr_mimebundle_()
    assert list(view.metric_picker.options) == ["auc", "loss"]
    first = view.plot.value
    view.metric_picker.value = "loss"
    assert view.plot.value != first and view.plot.value.startswith("<img")


def test_versions_panel_promote_gate_force_demote(model_two_versions):
    view = display.versions_view("m", mlops.list_versions("m"), mlops.model_history("m"), live=True, api=api)
    assert WIDGET_MIME in view._repr_mimebundle_()
    assert set(view.controls) == {1, 2} and view.confirm_box.layout.display == "none"

    # promote v1 to staging: ask, then confirm
    view.controls[1]["to"].value = "staging"
    view.controls[1]["promote"].click()
    assert view.confirm_box.layout.display is None and "v1 to staging" in view.question.value
    assert alias_version("m@staging") is None  # nothing happens before confirmation
    view.confirm_button.click()
    assert alias_version("m@staging") == 1
    assert "m@staging" in view.status.value and "Demote staging" in [
        b.description for b in view.controls[1]["demote"].values()
    ]

    # cancel leaves everything as it was
    view.controls[2]["to"].value = "staging"
    view.controls[2]["promote"].click()
    view.cancel_button.click()
    assert alias_version("m@staging") == 1 and view.pending is None

    # v1 to production, then the worse v2: the gate refuses
    view.controls[1]["to"].value = "production"
    view.controls[1]["promote"].click()
    view.confirm_button.click()
    assert alias_version("m@production") == 1
    view.controls[2]["to"].value = "production"
    view.controls[2]["promote"].click()
    view.confirm_button.click()
    assert alias_version("m@production") == 1
    assert "worse" in view.message and display._CSS["error"] in view.status.value
    assert view.force_button.layout.display is None

    # force needs a reason
    view.force_button.click()
    assert "needs a reason" in view.message and alias_version("m@production") == 1
    view.reason.value = "hotfix <b>now</b>"
    view.force_button.click()
    assert alias_version("m@production") == 2 and "(forced)" in view.message
    assert mlops.model_history("m")[-1]["forced"] and mlops.model_history("m")[-1]["reason"] == "hotfix <b>now</b>"
    assert "hotfix &lt;b&gt;now&lt;/b&gt;" in view.history_html.value

    # demote production
    view.controls[2]["demote"]["production"].click()
    view.confirm_button.click()
    assert alias_version("m@production") is None and alias_version("m@staging") == 1
    assert "production" not in view.controls[2]["demote"]


def test_versions_panel_handlers_never_raise(model_two_versions):
    class BrokenApi:
        def promote(self, *args, **kwargs):
            raise RuntimeError("database on fire")

        def demote(self, *args, **kwargs):
            raise InvalidInput("alias 'x' is not held")

        def list_versions(self, name):
            return api.list_versions(name)

        def model_history(self, name):
            return api.model_history(name)

    view = display.versions_view("m", mlops.list_versions("m"), [], live=True, api=BrokenApi())
    assert view.widget is not None
    view.controls[1]["promote"].click()
    view.confirm_button.click()
    assert view.message == "RuntimeError: database on fire"
    view.confirm_button.click()  # nothing pending any more
    assert "Nothing to confirm" in view.message
    view.ask_demote("x", 1)
    view.confirm_button.click()
    assert view.message == "alias 'x' is not held"


def test_widget_failure_falls_back_to_html(two_runs, model_two_versions, monkeypatch):
    import ipywidgets

    def broken(*args, **kwargs):
        raise RuntimeError("no widgets here")

    monkeypatch.setattr(ipywidgets, "Button", broken)
    views = [
        display.versions_view("m", mlops.list_versions("m"), [], live=True, api=api),
        display.runs_frame_view(mlops.search_runs(), live=True, query=lambda f, o: None),
    ]
    for view in views:
        bundle = view._repr_mimebundle_()
        assert WIDGET_MIME not in bundle and "<table" in bundle["text/html"]
        assert view.widget is None and "no widgets here" in str(view.widget_error)
