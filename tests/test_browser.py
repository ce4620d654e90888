"""The JupyterLab extension in a real browser: Debian's Chromium, driven by Playwright, against a
``jupyter lab`` started on 127.0.0.1 with a temporary registry the fixtures fill.

What a user sees and does: the MLOps sidebar lists runs and model versions with their aliases;
promoting through the dialog moves the alias in the registry; "Convert to pipeline" writes the
pipeline folder; "Mark as pipeline step…" tags the cell and shows its badge; a ``%mlops`` widget
panel renders and answers in a notebook. Screenshots go to a folder printed at the end (and are
copied to /tmp/mlops-browser-screenshots). The sidebar's first paint with 10,000 runs and 200
model versions is measured and printed here, never asserted (the target is in benchmarks/:
``benchmarks/bench_sidebar.py``).

Needs /usr/bin/chromium (``apt-get install -y chromium``); skipped without it unless
``MLOPS_TEST_BROWSER=1`` (set by ``.ci/run``), which makes a missing browser a failure.
"""

import json
import os
import shutil
import statistics
from pathlib import Path

import pytest
from playwright.sync_api import expect

import browser_support as bs
from mlops_jupyter import api

REQUIRED = os.environ.get("MLOPS_TEST_BROWSER") == "1"
expect.set_options(timeout=bs.UI_TIMEOUT_MS)  # a loaded 2-core machine renders slowly
EXAMPLES = Path(__file__).resolve().parent.parent / "example_notebooks"
FIRST_PAINT_OPENINGS = 3

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not bs.CHROMIUM.exists() and not REQUIRED,
        reason=f"no Chromium at {bs.CHROMIUM} (apt-get install -y chromium); set MLOPS_TEST_BROWSER=1 to require it",
    ),
]


def _report(config, line):
    """A line on the terminal even when pytest captures output (screenshot folder, timings)."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


# ---- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a temporary folder, its sidebar on a registry with the small set of
    ``bs.fill_registry`` plus 10,000 runs and 200 model versions (``bs.fill_bulk``).
    The registry is filled while the server starts (it opens the registry on first request)."""
    if not bs.CHROMIUM.exists():
        pytest.fail(f"MLOPS_TEST_BROWSER=1 but there is no Chromium at {bs.CHROMIUM}: apt-get install -y chromium")
    base = tmp_path_factory.mktemp("browser")
    (base / "registry").mkdir()
    url = f"sqlite:///{base / 'registry' / 'registry.db'}"
    api.connect(url)  # the schema, before two processes open the file
    api.disconnect()
    server = bs.JupyterLab(base / "root", base / "state", url).launch()
    try:
        bs.fill_registry(url)
        bs.fill_bulk(url)
        server.wait_ready()
        status, page = server.request("/lab")
        assert status == 200
        if "mlops-jupyter" not in page:
            pytest.fail("JupyterLab does not load the mlops-jupyter extension: build it with "
                        "`jlpm build` in labextension/ (or `pip install -e .`)")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def registry_url(lab):
    return lab.registry_url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = bs.launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory, request):
    """The folder this run's screenshots go to; printed, with the stable copy, at the end."""
    folder = tmp_path_factory.mktemp("screenshots")
    if bs.SCREENSHOTS.is_dir():
        for old in bs.SCREENSHOTS.glob("*.png"):
            old.unlink()
    yield folder
    names = sorted(p.name for p in folder.glob("*.png"))
    if names:
        _report(request.config, f"\nbrowser screenshots: {folder} (copies in {bs.SCREENSHOTS}): {', '.join(names)}")


@pytest.fixture
def page(browser, screenshots, request):
    """A fresh page (its own browser context); on failure, a screenshot and the console errors."""
    failed_before = request.session.testsfailed
    page = bs.new_page(browser)
    yield page
    if request.session.testsfailed > failed_before:
        path = bs.screenshot(page, screenshots, f"failed-{request.node.name}")
        _report(request.config, f"\n{request.node.name} failed; screenshot {path}; console errors: {page.mlops_errors}")
    page.context.close()


@pytest.fixture
def registry(registry_url):
    """The test process's own connection to the registry the server shows."""
    yield api.connect(registry_url)
    api.disconnect()


def write_notebook(path, sources):
    """A notebook of code cells (Python 3 kernel), as JupyterLab would save it."""
    cells = [{"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {}, "outputs": [],
              "source": source} for i, source in enumerate(sources)]
    path.write_text(json.dumps({
        "cells": cells, "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
    }))


# ---- the sidebar ---------------------------------------------------------------------------

def test_sidebar_lists_experiments_runs_and_model_versions_with_aliases(lab, page, registry, screenshots):
    bs.open_lab(page, lab, "sidebar")
    sidebar = bs.open_sidebar(page)

    experiments = sidebar.locator('[data-mlops-section="experiments"]')
    churn = experiments.locator('[data-mlops-experiment="churn"]')
    expect(churn).to_contain_text("3 runs")
    expect(experiments.locator(f'[data-mlops-experiment="{bs.BULK_EXPERIMENT}"]')).to_contain_text("10000 runs")
    churn.click()
    rows = experiments.locator("[data-mlops-run]")
    rows.first.wait_for()
    expected = {run["name"]: run for run in api.search_runs(experiment="churn", output="list")}
    shown = {rows.nth(i).locator(".mlops-name").inner_text(): rows.nth(i) for i in range(rows.count())}
    assert set(shown) == {"baseline-logreg", "rf-depth-4", "rf-depth-8"} == set(expected)
    for name, row in shown.items():
        assert row.get_attribute("data-mlops-run") == expected[name]["id"]
    expect(shown["rf-depth-8"]).to_contain_text("auc 0.83")

    models = sidebar.locator('[data-mlops-section="models"]')
    models.locator('[data-mlops-model="churn"]').click()
    v1, v2 = (models.locator(f'[data-mlops-version="churn/{v}"]') for v in (1, 2))
    v2.wait_for()
    expect(v1.locator(".mlops-alias")).to_have_text(["staging"])
    expect(v2.locator(".mlops-alias")).to_have_text(["production"])
    assert v1.locator('button[data-mlops-action="promote"]').is_visible()
    bs.screenshot(page, screenshots, "sidebar")


def test_search_narrows_the_sidebar_and_says_when_nothing_matches(lab, page):
    bs.open_lab(page, lab, "search")
    sidebar = bs.open_sidebar(page)
    search = sidebar.locator("input[data-mlops-search]")
    search.fill("fraud")
    experiments = sidebar.locator('[data-mlops-section="experiments"]')
    experiments.locator('[data-mlops-experiment="churn"]').wait_for(state="detached")
    assert experiments.locator("[data-mlops-experiment]").evaluate_all("rows => rows.map(r => r.dataset.mlopsExperiment)") \
        == ["fraud"]
    assert sidebar.locator('[data-mlops-section="models"] [data-mlops-model]').evaluate_all(
        "rows => rows.map(r => r.dataset.mlopsModel)") == ["fraud"]
    search.fill("no-such-thing")
    expect(experiments.locator(".mlops-empty")).to_contain_text('No experiment matches "no-such-thing"')


def test_promoting_through_the_dialog_moves_the_alias_in_the_registry(lab, page, registry, screenshots):
    assert api.get_model_version("fraud@production")["version"] == 1
    bs.open_lab(page, lab, "promote")
    sidebar = bs.open_sidebar(page)
    sidebar.locator('[data-mlops-model="fraud"]').click()
    candidate = sidebar.locator('[data-mlops-version="fraud/2"]')
    candidate.locator('button[data-mlops-action="promote"]').click()

    # First dialog: which alias; then the gates' verdicts before anything changes.
    choose = page.locator(".jp-Dialog")
    choose.locator("input").fill("production")
    choose.locator("button", has_text="Check gates").click()
    confirm = page.locator(".jp-Dialog", has=page.locator(".mlops-verdict"))
    verdict = confirm.locator('.mlops-verdict[data-mlops-gate="metric_not_worse"]')
    verdict.wait_for()
    assert "mlops-verdict-passed" in verdict.get_attribute("class")
    expect(verdict).to_contain_text("auc 0.88 vs 0.81")
    expect(confirm).to_contain_text("production moves from v1 to v2")
    assert api.get_model_version("fraud@production")["version"] == 1  # checking changed nothing
    confirm.locator("textarea[data-mlops-reason]").fill("better auc on the holdout")
    bs.screenshot(page, screenshots, "promote-dialog")
    confirm.locator("button", has_text="Promote").click()

    # The sidebar redraws with the badge moved, and the registry agrees.
    sidebar.locator('[data-mlops-version="fraud/2"] .mlops-alias', has_text="production").wait_for()
    assert sidebar.locator('[data-mlops-version="fraud/1"] .mlops-alias').count() == 0
    assert api.get_model_version("fraud@production")["version"] == 2
    last = api.model_history("fraud")[-1]
    assert (last["alias"], last["from_version"], last["to_version"]) == ("production", 1, 2)
    assert last["reason"] == "better auc on the holdout" and last["user"] == "browser-test"


# ---- notebooks -----------------------------------------------------------------------------

def test_convert_to_pipeline_from_the_palette_writes_the_pipeline(lab, page):
    shutil.copy(EXAMPLES / "features.ipynb", lab.root / "features.ipynb")
    bs.open_file(page, lab, "convert", "features.ipynb")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
    page.locator('.jp-NotebookPanel-toolbar [data-mlops-action="convert"]').wait_for()  # the toolbar's button
    bs.run_command(page, "Convert to pipeline")

    dialog = page.locator(".jp-Dialog", has=page.locator("[data-mlops-conversion]"))
    dialog.wait_for()
    expect(dialog).to_contain_text("Pipeline written to features_pipeline")
    shown = dialog.locator("[data-mlops-step]").evaluate_all("items => items.map(i => i.dataset.mlopsStep)")
    spec = json.loads((lab.root / "features_pipeline" / "pipeline.json").read_text())
    assert [step["name"] for step in spec["steps"]] == shown
    assert len(shown) >= 3
    for step in shown:
        assert (lab.root / "features_pipeline" / "steps" / f"{step}.py").is_file()
    dialog.locator("button", has_text="Ok").click()
    dialog.wait_for(state="detached")


def test_mark_as_pipeline_step_tags_the_cell_and_shows_a_badge(lab, page):
    path = lab.root / "mark.ipynb"
    write_notebook(path, ["data = list(range(10))", "total = sum(data)"])
    bs.open_file(page, lab, "mark", "mark.ipynb")
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    cells.nth(1).wait_for()
    bs.wait_for_kernel_idle(page)  # the notebook is fully set up

    cells.nth(1).locator(".jp-InputArea-editor").click(button="right")
    page.locator(".lm-Menu-item", has_text="Mark as pipeline step…").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill("sum up")
    dialog.locator("button", has_text="Mark").click()
    refusal = page.locator(".jp-Dialog", has_text="Not a valid step name")
    expect(refusal).to_contain_text("not a Python identifier")
    refusal.locator("button", has_text="Close").click()
    dialog = page.locator(".jp-Dialog", has_text="Mark as pipeline step")
    dialog.locator("input").fill("sum_up")
    dialog.locator("button", has_text="Mark").click()

    badge = cells.nth(1).locator(".mlops-step-badge")
    expect(badge).to_have_text("sum_up")
    assert "mlops-step-cell" in cells.nth(1).get_attribute("class")
    assert cells.nth(0).locator(".mlops-step-badge").count() == 0

    page.keyboard.press("Control+s")
    page.wait_for_function(
        "() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    saved = json.loads(path.read_text())
    assert saved["cells"][1]["metadata"]["tags"] == ["step:sum_up"]
    assert "tags" not in saved["cells"][0]["metadata"]


def test_mlops_widget_panel_renders_and_filters_in_a_notebook(lab, page, screenshots):
    write_notebook(lab.root / "widgets.ipynb", ["%load_ext mlops_jupyter", "%mlops runs --experiment churn"])
    bs.open_file(page, lab, "widgets", "widgets.ipynb")
    page.locator(".jp-NotebookPanel .jp-CodeCell").nth(1).wait_for()
    bs.wait_for_kernel_idle(page)
    bs.run_command(page, "Run All Cells")

    output = page.locator(".jp-NotebookPanel .jp-CodeCell").nth(1).locator(".jp-OutputArea-output")
    panel = output.locator(".jupyter-widgets.widget-vbox").first
    panel.wait_for()
    assert "Error displaying widget" not in output.inner_text()
    table = panel.locator("table")
    for name in ("baseline-logreg", "rf-depth-4", "rf-depth-8"):
        expect(table).to_contain_text(name)
    bs.screenshot(page, screenshots, "notebook-widget")

    # The panel is live: a filter goes to the kernel and the table comes back narrowed.
    search = panel.locator(".widget-text input")
    search.fill("metrics.auc > 0.8")
    search.press("Enter")
    page.wait_for_function(
        """(cell) => !cell.innerText.includes('baseline-logreg')""",
        arg=output.element_handle())
    assert "rf-depth-8" in table.inner_text() and "rf-depth-4" not in table.inner_text()


# ---- first paint on a big registry (measured, printed, not asserted) -----------------------

def test_sidebar_first_paint_with_10000_runs_and_200_versions(lab, page, request):
    """Each opening on a freshly loaded page: tab clicked → panel ready, row clicked → first 50 of
    10,000 runs, with "More" for the rest. The times are printed; benchmarks/ holds the target."""
    api.connect(lab.registry_url)
    counts = api.registry_counts()
    api.disconnect()
    assert counts["model_versions"] >= 200 and counts["runs"] >= 10_000
    openings = [bs.measure_first_paint(page, lab, f"first-paint-{i}") for i in range(FIRST_PAINT_OPENINGS)]
    for opening in openings:
        assert opening["run_rows"] == 50
    more = page.locator(f'{bs.SIDEBAR} button[data-mlops-action="more"]')
    bs.open_sidebar(page)  # the last opening left it closed, with the experiment expanded
    expect(more).to_have_text("More (50 of 10000)")
    more.click()
    page.locator(f"{bs.SIDEBAR} [data-mlops-run]").nth(99).wait_for()
    assert page.locator(f"{bs.SIDEBAR} [data-mlops-run]").count() == 100

    each = ", ".join(f"{o['total_ms']:.0f}" for o in openings)
    median = {key: statistics.median(o[key] for o in openings) for key in ("ready_ms", "runs_ms", "total_ms")}
    _report(request.config,
            f"\nsidebar first paint, {counts['runs']:,} runs and {counts['model_versions']} model versions, "
            f"median of {len(openings)} openings: panel ready {median['ready_ms']:.0f} ms, first 50 runs "
            f"{median['runs_ms']:.0f} ms after the click, together {median['total_ms']:.0f} ms "
            f"(each: {each} ms); target in benchmarks/bench_sidebar.py")
