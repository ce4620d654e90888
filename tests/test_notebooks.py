"""Every example notebook runs top to bottom in a fresh kernel against a fresh registry."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import mlops_jupyter as mlops

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "example_notebooks").glob("*.ipynb"))


def execute(path, tmp_path, monkeypatch):
    """Run the notebook in ``tmp_path`` with its own registry; return the executed notebook."""
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("MLOPS_REGISTRY_URL", registry)  # the kernel inherits it
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    mlops.connect(registry)
    return notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_example_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    notebook = execute(path, tmp_path, monkeypatch)
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []


def test_quickstart_leaves_three_runs_and_a_production_model(tmp_path, monkeypatch):
    notebook = execute(NOTEBOOKS[[p.stem for p in NOTEBOOKS].index("quickstart")], tmp_path, monkeypatch)
    runs = mlops.search_runs(experiment="quickstart", order_by="metrics.roc_auc desc")
    assert sorted(runs["name"]) == ["boosting", "forest", "logistic"]
    assert set(runs["status"]) == {"FINISHED"}
    assert runs["metrics.roc_auc"].between(0.9, 1.0).all()
    assert (runs["params.estimator"].notna()).all()
    production = mlops.get_model_version("breast-cancer@production")
    assert production["aliases"] == ["production", "staging"]
    assert production["run_id"] == runs["run_id"].iloc[0]  # the best run's model was registered
    assert [h["alias"] for h in mlops.model_history("breast-cancer")] == ["staging", "production"]
    summary = notebook.cells[4].outputs
    assert any("text/html" in o.get("data", {}) for o in summary)  # the run summary rendered as HTML
