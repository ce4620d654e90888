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
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code" and "raises-exception" not in c.metadata.get("tags", [])
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert errors == []  # cells tagged raises-exception show a refusal on purpose


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


def test_features_notebook_links_features_to_the_model(tmp_path, monkeypatch):
    notebook = execute(NOTEBOOKS[[p.stem for p in NOTEBOOKS].index("features")], tmp_path, monkeypatch)
    refused = [c for c in notebook.cells if "raises-exception" in c.metadata.get("tags", [])]
    assert any("min=0 failed" in o.get("evalue", "") for c in refused for o in c.outputs)
    assert mlops.get_feature("total_spend")["version"] == 1  # the broken version was refused
    assert mlops.get_feature("purchases")["checks"]["passed"]
    (run,) = mlops.search_runs(experiment="churn-features", output="list")
    (used,) = mlops.training_sets_using("total_spend")
    assert (used["name"], used["run_id"]) == ("churn-train", run["id"])
    assert mlops.get_model_version("churn@latest")["run_id"] == run["id"]
    online = mlops.get_online_features(["total_spend", "purchases"], [0, 1, 2], env="staging")
    assert len(online) == 3
