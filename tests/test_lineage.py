"""Lineage: from a model version back to its run, pipeline, notebook, training set, feature
versions and their sources, through a notebook run and through a converted pipeline."""

import re

import pytest
from IPython.core.error import UsageError
from pipeline_notebooks import code, notebook, write
from served_models import FEATURES, build_churn_model

import mlops_jupyter as mlops


def kinds(found):
    return {node["kind"] for node in found["nodes"]}


def test_a_notebook_run_model_traces_back_to_its_features_sources_and_notebook(registry, monkeypatch):
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/ana/churn.ipynb")  # how Jupyter tells a kernel its notebook
    table, _ = build_churn_model()
    found = mlops.lineage("churn@staging")
    assert found["model"]["name"] == "churn" and found["model"]["version"] == 1
    assert [run["name"] for run in found["runs"]] == ["train"]
    assert found["notebook"] == {"path": "/home/ana/churn.ipynb", "sha256": None} and found["pipeline"] is None
    (training_set,) = found["training_sets"]
    assert training_set["name"] == "churn_training" and training_set["run_id"] == found["model"]["run_id"]
    assert sorted(f["name"] for f in training_set["features"]) == sorted(FEATURES)
    digests = {source["digest"] for feature in training_set["features"] for source in feature["sources"]}
    assert digests == {mlops.get_feature("tenure")["sources"][0]["digest"]}
    assert all(feature["code_hash"] for feature in training_set["features"])
    assert kinds(found) == {"model", "run", "notebook", "training_set", "feature", "source", "code"}
    ids = {node["id"] for node in found["nodes"]}
    assert all(start in ids and end in ids for start, end in found["edges"])
    assert mlops.lineage("churn") == mlops.lineage("churn/1") == found  # the latest version is v1


PIPELINE_CELLS = [
    code("import numpy as np\nimport pandas as pd\nimport mlops_jupyter as mlops\n"
         "from sklearn.linear_model import LogisticRegression", "step:load"),
    code("rng = np.random.default_rng(3)\n"
         "table = pd.DataFrame({'customer': np.arange(200), 'at': pd.Timestamp('2026-01-01'),\n"
         "                      'tenure': rng.gamma(3.0, 8.0, 200)})\n"
         "labels = table[['customer', 'at']].assign(at=table['at'] + pd.Timedelta(hours=1),\n"
         "                                          churned=(table['tenure'] < 20).astype(int))"),
    code("mlops.register_feature('tenure', table[['customer', 'at', 'tenure']], entity='customer',\n"
         "                       timestamp='at', code='tenure', sources={'table': table})\n"
         "frame = mlops.training_set('pipe_training', labels, 'tenure', label='churned')", "step:features"),
    code("model = LogisticRegression().fit(frame[['tenure']], frame['churned'])\n"
         "version = mlops.register_model(model, 'pipe_churn')", "step:train"),
]


def test_a_pipeline_model_traces_back_to_the_pipeline_run_its_notebook_and_the_step_that_built_the_set(
        registry, tmp_path):
    path = write(notebook(*PIPELINE_CELLS), tmp_path / "pipe.ipynb")
    pipeline = mlops.convert(path)
    ran = mlops.run_pipeline(pipeline.directory)
    found = mlops.lineage("pipe_churn")
    assert [run["name"] for run in found["runs"]] == ["train", pipeline.spec.name]
    assert found["pipeline"]["run_id"] == ran["run_id"] and found["pipeline"]["name"] == pipeline.spec.name
    assert found["notebook"] == {"path": pipeline.spec.notebook["path"], "sha256": pipeline.spec.notebook["sha256"]}
    (training_set,) = found["training_sets"]  # built by the sibling step "features"
    assert training_set["name"] == "pipe_training" and training_set["run_id"] == ran["steps"]["features"]["run_id"]
    ((feature,),) = [training_set["features"]]
    assert (feature["name"], feature["version"], feature["sources"][0]["name"]) == ("tenure", 1, "table")
    assert {"pipeline", "notebook", "training_set", "feature", "source"} <= kinds(found)
    assert (f"run:{ran['run_id']}", "training_set:" + str(training_set["id"])) in found["edges"]


def test_the_magic_draws_the_graph_and_returns_the_data(shell, capsys):
    build_churn_model()
    found = shell.run_line_magic("mlops", "lineage churn@staging")
    assert found["model"]["version"] == 1
    shown = capsys.readouterr().out
    assert "training_set: training set churn_training" in shown and "source: customers" in shown
    from mlops_jupyter.jupyter.display import lineage_view

    html = lineage_view(found).html()
    assert html.count("<rect") == len(found["nodes"]) and html.count("<path") == len(found["edges"])


@pytest.mark.parametrize("reference, message", [
    ("chrun", "no registered model 'chrun' (did you mean 'churn'?)"),
    ("churn@prod", "model 'churn' has no version with alias 'prod'; its aliases: staging"),
    ("churn/7", "model 'churn' has no version 7"),
    ("../x", "model name"),
])
def test_bad_references_are_one_line_and_change_nothing(shell, reference, message):
    build_churn_model()
    before = mlops.registry_counts()
    with pytest.raises(UsageError, match=re.escape(message)) as raised:
        shell.run_line_magic("mlops", f"lineage {reference}")
    assert "\n" not in str(raised.value)
    assert mlops.registry_counts() == before
