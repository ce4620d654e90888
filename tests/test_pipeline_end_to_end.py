"""Notebooks converted, run as pipelines and verified against runs of the notebooks themselves."""

import shutil
from pathlib import Path

import pytest
from pipeline_notebooks import churn_notebook, code, notebook, write

from mlops_jupyter import api, cli

EXAMPLES = Path(__file__).resolve().parent.parent / "example_notebooks"


@pytest.fixture
def local_registry(tmp_path):
    """One SQLite registry: these tests run kernels and models, once is enough (the runner's own
    tests cover PostgreSQL)."""
    api.connect(f"sqlite:///{tmp_path / 'registry.db'}")
    yield
    api.disconnect()


def children(run_id):
    return {run["name"]: run for run in api.search_runs(f"parent_run_id = '{run_id}'", output="list")}


def test_churn_notebook_runs_caches_and_reproduces_the_notebook(tmp_path, local_registry, capsys):
    path = write(churn_notebook(), tmp_path / "churn.ipynb")
    pipeline = api.convert(path)

    first = api.run_pipeline(pipeline.directory)
    assert {name: step["status"] for name, step in first["steps"].items()} == dict.fromkeys(
        ["load", "features", "labels", "train", "report"], "ran")
    steps = children(first["run_id"])
    train = api.get_run(steps["train"]["id"])
    assert any(a["path"].startswith("figures/") and a["path"].endswith(".png") for a in train["artifacts"])
    inner = children(train["id"])["train"]  # the notebook's %%mlops run, inside the step's run
    assert inner["params"]["trees"] == "20" and 0 < inner["metrics"]["accuracy"] <= 1
    assert api.get_run(first["run_id"])["tags"]["mlops.notebook.sha256"] == pipeline.spec.notebook["sha256"]
    from mlops_jupyter.pipeline.runner import load_step_outputs

    report = load_step_outputs(steps["report"]["id"])["report"]
    assert report["calls"] == 2 and report["history"][1] == report["history"][0] + 1

    again = api.run_pipeline(pipeline.directory)
    assert {step["status"] for step in again["steps"].values()} == {"cached"}

    changed = api.run_pipeline(pipeline.directory, params={"n_trees": 5})
    assert {name: step["status"] for name, step in changed["steps"].items()} == {
        "load": "cached", "features": "cached", "labels": "cached", "train": "ran", "report": "ran"}

    # Against the notebook run with the same override: every step's values equal.
    verified = api.verify_pipeline(pipeline.directory, params={"n_trees": 5})
    assert verified.ok, verified.text()
    assert ("train", "model") in verified.compared and ("labels", "frame") in verified.compared
    assert len(verified.compared) >= 20


def test_verify_reports_what_differs_and_where(tmp_path, local_registry, capsys):
    path = write(notebook(
        code("import random\nstable = [1, 2, 3]", "step:draw"),
        code("noise = random.random()\ntotal = sum(stable)", "step:use"),
    ), tmp_path / "noisy.ipynb")
    api.convert(path)
    assert cli.main(["pipeline", "verify", str(tmp_path / "noisy_pipeline")]) == 1
    printed = capsys.readouterr().out
    assert "1 differ" in printed and "use.noise: " in printed and "in the notebook" in printed
    assert "use.total" not in printed


def test_verify_refuses_a_notebook_changed_since_conversion(tmp_path, local_registry, capsys):
    path = write(notebook(code("x = 1", "step:a")), tmp_path / "n.ipynb")
    api.convert(path)
    write(notebook(code("x = 2", "step:a")), path)
    assert cli.main(["pipeline", "verify", str(tmp_path / "n_pipeline")]) == 1
    assert "changed since it was converted; convert it again" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["quickstart", "features"])
def test_every_example_notebook_converts_runs_and_verifies(name, tmp_path, local_registry):
    path = shutil.copy(EXAMPLES / f"{name}.ipynb", tmp_path / f"{name}.ipynb")
    pipeline = api.convert(path)
    result = api.run_pipeline(pipeline.directory)
    assert {step["status"] for step in result["steps"].values()} == {"ran"}
    verified = api.verify_pipeline(pipeline.directory)
    assert verified.ok, verified.text()
    assert verified.compared
