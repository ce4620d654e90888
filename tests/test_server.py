"""The Jupyter Server extension's REST API: every route, through a real server (pytest-jupyter)."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from traitlets.config import Config

import mlops_jupyter as mlops
from mlops_jupyter import api
from mlops_jupyter.jupyter.server import MlopsServer, RegistryUnavailable
from tests import pipeline_notebooks as nb

pytest_plugins = ("pytest_jupyter.jupyter_server",)

RUNS_IN_CHURN = 30


@pytest.fixture
def filled(registry):
    """Experiment 'churn' with 30 runs (auc 0.00…0.29, model rf/lr, one NaN loss), 'other' with 2;
    model 'churn' v1 (auc 0.9, staging) and v2 (auc 0.8); features 'spend' (fails max=50),
    'visits' (passes its rules) and 'plain' (no rules)."""
    for i in range(RUNS_IN_CHURN):
        with mlops.start_run(f"r{i:02d}", experiment="churn"):
            mlops.log_metrics({"auc": i / 100, "loss": float("nan") if i == 0 else 1 - i / 100})
            mlops.log_params({"model": "rf" if i % 2 else "lr"})
    for i in range(2):
        with mlops.start_run(f"o{i}", experiment="other"):
            mlops.log_metric("auc", 0.5)
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    for auc, strength in ((0.9, 1.0), (0.8, 0.5)):
        with mlops.start_run(experiment="training"):
            mlops.log_metric("auc", auc)
            mlops.register_model(LogisticRegression(C=strength).fit(X, y), "churn", primary_metric="auc")
    mlops.promote("churn", 1, to="staging", reason="first candidate")
    at = pd.Timestamp("2026-01-01")
    for name, values in (("spend", [10.0, 60.0, 5.0]), ("visits", [1.0, 2.0, 3.0]), ("plain", [0.5, 0.5, 0.5])):
        frame = pd.DataFrame({"customer": [1, 2, 3], "at": [at] * 3, name: values})
        mlops.register_feature(name, frame, entity="customer", timestamp="at", description=f"{name} per customer")
    mlops.expect("spend", "min=0", "max=50")
    mlops.expect("visits", "min=0")
    return registry


@pytest.fixture
def jp_server_config(registry_url, tmp_path):
    return Config({
        "ServerApp": {"jpserver_extensions": {"mlops_jupyter": True}},
        "MlopsServer": {"registry_url": registry_url, "artifacts_url": str(tmp_path / "artifacts")},
    })


@pytest.fixture
def fetch(jp_fetch):
    """``fetch("runs", params=…)`` or ``fetch("models/churn/promote", body={…})``: (status, JSON body)."""

    async def call(path, *, params=None, body=None, raw=None, headers=None):
        kwargs = {"params": params, "headers": headers, "raise_error": False}
        if body is not None or raw is not None:
            kwargs.update(method="POST", body=raw if raw is not None else json.dumps(body))
        response = await jp_fetch("mlops", "api", *path.split("/"), **kwargs)
        return response.code, json.loads(response.body)

    return call


async def test_status_names_the_registry_user_and_counts(filled, fetch):
    code, body = await fetch("status")
    assert code == 200
    assert body["registry"] == filled.url and body["user"] == "tester" and body["experiment"] == "default"
    assert body["counts"] == {"features": 3, "experiments": 3, "runs": 34, "models": 1, "model_versions": 2}


async def test_features_with_their_expectation_status(filled, fetch):
    code, body = await fetch("features")
    assert code == 200
    by_name = {item["name"]: item for item in body["items"]}
    assert list(by_name) == ["plain", "spend", "visits"]
    spend = by_name["spend"]
    assert (spend["version"], spend["dtype"], spend["rows"], spend["created_by"]) == (1, "float64", 3, "tester")
    assert spend["description"] == "spend per customer"
    assert spend["expectations"]["rules"] == 2 and spend["expectations"]["status"] == "failed"
    assert len(spend["expectations"]["failures"]) == 1 and spend["expectations"]["failures"][0].startswith("max=50")
    assert by_name["visits"]["expectations"] == {"rules": 1, "status": "passed", "failures": []}
    assert by_name["plain"]["expectations"] == {"rules": 0, "status": "none", "failures": []}

    code, body = await fetch("features", params={"search": "VISIT"})
    assert [item["name"] for item in body["items"]] == ["visits"]


async def test_one_feature_versions_expectations_and_training_sets(filled, fetch):
    code, body = await fetch("features/spend")
    assert code == 200
    assert body["name"] == "spend" and [v["version"] for v in body["versions"]] == [1]
    assert [(e["rule"], e["passed"]) for e in body["expectations"]] == [("min=0", True), ("max=50", False)]
    assert body["training_sets"] == []


async def test_experiments_with_run_counts(filled, fetch):
    code, body = await fetch("experiments")
    assert code == 200
    assert [(e["name"], e["runs"], e["created_by"]) for e in body["items"]] == [
        ("churn", 30, "tester"), ("other", 2, "tester"), ("training", 2, "tester")]


async def test_runs_paginated_with_total(filled, fetch):
    code, body = await fetch("runs", params={"experiment": "churn", "sort": "metrics.auc desc", "limit": 10})
    assert code == 200
    assert (body["total"], body["limit"], body["offset"]) == (RUNS_IN_CHURN, 10, 0)
    assert [run["name"] for run in body["items"]] == [f"r{i:02d}" for i in range(29, 19, -1)]
    first = body["items"][0]
    assert first["metrics"]["auc"] == 0.29 and first["params"] == {"model": "rf"}
    assert first["experiment"] == "churn" and first["status"] == "FINISHED" and first["user"] == "tester"
    assert first["end_time"] >= first["start_time"]

    code, body = await fetch("runs", params={"experiment": "churn", "sort": "metrics.auc desc", "limit": 10,
                                             "offset": 25})
    assert [run["name"] for run in body["items"]] == ["r04", "r03", "r02", "r01", "r00"]
    assert body["items"][-1]["metrics"]["loss"] is None  # NaN arrives as null, which a browser parses


async def test_runs_filter_counts_only_the_matches(filled, fetch):
    code, body = await fetch("runs", params={"filter": "metrics.auc >= 0.2 and params.model = 'rf'"})
    assert code == 200
    assert body["total"] == 5 and sorted(r["name"] for r in body["items"]) == ["r21", "r23", "r25", "r27", "r29"]
    code, body = await fetch("runs")
    assert body["total"] == 34 and len(body["items"]) == 34 and body["limit"] == 50


async def test_one_run_in_full(filled, fetch):
    run_id = api.search_runs("name = 'r05'", output="list")[0]["id"]
    code, body = await fetch(f"runs/{run_id}")
    assert code == 200
    assert body["id"] == run_id and body["metrics"]["auc"] == 0.05 and body["params"] == {"model": "rf"}
    assert "code" in body and "packages" in body
    code, body = await fetch(f"runs/{run_id[:8]}")  # an id prefix, as api.get_run takes
    assert code == 200 and body["id"] == run_id


async def test_models_and_versions_with_aliases_and_history(filled, fetch):
    code, body = await fetch("models")
    assert code == 200
    assert [(m["name"], m["latest_version"], m["aliases"], m["created_by"]) for m in body["items"]] == [
        ("churn", 2, {"staging": 1}, "tester")]
    code, body = await fetch("models/churn/versions")
    assert code == 200
    assert [(v["version"], v["aliases"], v["metrics"]) for v in body["items"]] == [
        (2, [], {"auc": 0.8}), (1, ["staging"], {"auc": 0.9})]
    assert set(body["items"][0]) == {"version", "aliases", "run_id", "metrics", "model_class", "created_at",
                                     "created_by", "description"}
    assert body["items"][0]["model_class"].endswith("LogisticRegression")
    assert [(h["alias"], h["from_version"], h["to_version"], h["reason"]) for h in body["history"]] == [
        ("staging", None, 1, "first candidate")]


async def test_check_then_promote_moves_the_alias(filled, fetch):
    counts = api.registry_counts()
    code, check = await fetch("models/churn/check", body={"version": 1, "to": "production"})
    assert code == 200
    assert check["passed"] is True and check["changed"] is True and check["from_version"] is None
    assert api.registry_counts() == counts  # a check changes nothing
    code, body = await fetch("models/churn/promote", body={"version": 1, "to": "production", "reason": "best auc"})
    assert code == 200 and body["changed"] is True and body["to_version"] == 1
    assert mlops.get_model_version("churn@production")["version"] == 1
    assert mlops.model_history("churn")[-1]["reason"] == "best auc"


async def test_a_failed_gate_is_409_with_verdicts_and_changes_nothing(filled, fetch):
    mlops.promote("churn", 1, to="production")
    counts = api.registry_counts()
    code, check = await fetch("models/churn/check", body={"version": 2, "to": "production"})
    assert code == 200 and check["passed"] is False and check["verdicts"][0]["passed"] is False
    code, body = await fetch("models/churn/promote", body={"version": 2, "to": "production"})
    assert code == 409
    assert "cannot promote churn v2 to production" in body["message"] and "\n" not in body["message"]
    assert [v["passed"] for v in body["verdicts"]] == [False] and "auc" in body["verdicts"][0]["message"]
    assert api.registry_counts() == counts
    assert mlops.get_model_version("churn@production")["version"] == 1


async def test_force_needs_a_reason_and_is_recorded(filled, fetch):
    mlops.promote("churn", 1, to="production")
    counts = api.registry_counts()
    code, body = await fetch("models/churn/promote", body={"version": 2, "to": "production", "force": True})
    assert code == 400 and "reason" in body["message"]
    assert api.registry_counts() == counts
    code, body = await fetch("models/churn/promote",
                             body={"version": 2, "to": "production", "force": True, "reason": "v1 leaks the label"})
    assert code == 200 and body["to_version"] == 2
    last = mlops.model_history("churn")[-1]
    assert (last["to_version"], last["forced"], last["reason"]) == (2, True, "v1 leaks the label")


async def test_demote_removes_the_alias(filled, fetch):
    code, body = await fetch("models/churn/demote", body={"alias": "staging", "reason": "retired"})
    assert code == 200 and (body["from_version"], body["to_version"]) == (1, None)
    assert mlops.list_models()[0]["aliases"] == {}
    assert mlops.model_history("churn")[-1]["reason"] == "retired"


async def test_convert_a_notebook_in_the_root(filled, fetch, jp_root_dir):
    (jp_root_dir / "work").mkdir()
    nb.write(nb.churn_notebook(), jp_root_dir / "work" / "churn.ipynb")
    code, body = await fetch("convert", body={"path": "work/churn.ipynb"})
    assert code == 200
    assert body["directory"] == "work/churn_pipeline"
    assert (jp_root_dir / "work" / "churn_pipeline" / "steps").is_dir()
    names = [step["name"] for step in body["steps"]]
    assert names[0] == "load" and len(names) >= 3
    assert set(body["steps"][0]) == {"name", "cells", "inputs", "parameters", "outputs", "results"}
    assert any(step["inputs"] for step in body["steps"][1:])
    assert body["warnings"] and all("message" in w for w in body["warnings"])

    code, body = await fetch("convert", body={"path": "work/churn.ipynb", "out": "pipelines/churn"})
    assert code == 200 and body["directory"] == "pipelines/churn"
    assert (jp_root_dir / "pipelines" / "churn" / "steps").is_dir()


async def test_unknown_names_are_404_naming_them(filled, fetch):
    counts = api.registry_counts()
    for path, name in (("models/nope/versions", "nope"), ("runs/zzzzzzzzzz", "zzzzzzzzzz"),
                       ("features/spnd", "spnd")):
        code, body = await fetch(path)
        assert code == 404 and name in body["message"], path
    code, body = await fetch("features/spnd")
    assert "did you mean 'spend'" in body["message"]
    code, body = await fetch("models/nope/promote", body={"version": 1, "to": "staging"})
    assert code == 404 and "nope" in body["message"]
    code, body = await fetch("models/churn/promote", body={"version": 9, "to": "staging"})
    assert code == 404 and "9" in body["message"]
    code, body = await fetch("runs", params={"experiment": "nope"})
    assert code == 404 and "nope" in body["message"]
    assert api.registry_counts() == counts


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("models/churn/promote", "{not json", "not valid JSON"),
        ("models/churn/promote", "[1, 2]", "JSON object"),
        ("models/churn/promote", {"to": "staging"}, "'version' is missing"),
        ("models/churn/promote", {"version": "1", "to": "staging"}, "'version' must be a version number"),
        ("models/churn/promote", {"version": True, "to": "staging"}, "'version'"),
        ("models/churn/promote", {"version": 1}, "'to' is missing"),
        ("models/churn/promote", {"version": 1, "to": "staging", "force": "yes"}, "'force'"),
        ("models/churn/promote", {"version": 1, "to": "staging", "reason": 5}, "'reason'"),
        ("models/churn/promote", {"version": 1, "to": "../x"}, "alias"),
        ("models/churn/check", {"version": 2}, "'to' is missing"),
        ("models/churn/demote", {}, "'alias' is missing"),
        ("models/churn/demote", {"alias": 3}, "'alias' must be"),
        ("convert", {}, "'path' is missing"),
        ("convert", {"path": "../outside.ipynb"}, "outside the server's root"),
        ("convert", {"path": "/etc/passwd"}, "outside the server's root"),
        ("convert", {"path": "a\x00b"}, "NUL"),
        ("convert", {"path": "ok.ipynb", "out": "../../elsewhere"}, "outside the server's root"),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(filled, fetch, path, body, named):
    counts = api.registry_counts()
    raw = body if isinstance(body, str) else None
    code, reply = await fetch(path, body=None if raw else body, raw=raw)
    assert code == 400, reply
    assert named in reply["message"] and "\n" not in reply["message"]
    assert api.registry_counts() == counts


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": 501}, "limit must be between 1 and 500"),
        ({"limit": 0}, "limit must be between 1 and 500"),
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"offset": -1}, "offset must be at least 0"),
        ({"filter": "metrics.auc >>> 1"}, "filter"),
        ({"sort": "metrics.auc sideways"}, ""),
    ],
)
async def test_bad_run_queries_are_400(filled, fetch, params, named):
    code, body = await fetch("runs", params=params)
    assert code == 400 and named in body["message"]


async def test_convert_of_a_missing_notebook_is_refused(filled, fetch):
    code, body = await fetch("convert", body={"path": "missing.ipynb"})
    assert code in (400, 404) and "missing.ipynb" in body["message"]


async def test_without_the_token_requests_are_refused(filled, fetch):
    counts = api.registry_counts()
    code, _ = await fetch("models", headers={"Authorization": ""})
    assert code in (401, 403)
    code, _ = await fetch("models/churn/demote", body={"alias": "staging"}, headers={"Authorization": ""})
    assert code in (401, 403)
    assert api.registry_counts() == counts


async def test_a_cookie_session_without_the_xsrf_token_cannot_post(filled, jp_fetch, jp_serverapp):
    token = jp_serverapp.identity_provider.token
    login = await jp_fetch("mlops", "api", "status", params={"token": token}, headers={"Authorization": ""})
    cookies = "; ".join(c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie"))
    assert "username-" in cookies  # the token in the URL logged this client in with a cookie

    code_with_cookie = (await jp_fetch("mlops", "api", "models", headers={"Authorization": "", "Cookie": cookies},
                                       raise_error=False)).code
    assert code_with_cookie == 200
    counts = api.registry_counts()
    response = await jp_fetch("mlops", "api", "models", "churn", "demote", method="POST",
                              body=json.dumps({"alias": "staging"}),
                              headers={"Authorization": "", "Cookie": cookies}, raise_error=False)
    assert response.code == 403 and "_xsrf" in json.loads(response.body)["message"]
    assert api.registry_counts() == counts

    # The same session with a matching _xsrf cookie and header, as JupyterLab sends them, may.
    response = await jp_fetch("mlops", "api", "models", "churn", "demote", method="POST",
                              body=json.dumps({"alias": "staging"}),
                              headers={"Authorization": "", "Cookie": f"{cookies}; _xsrf=abc123", "X-XSRFToken": "abc123"},
                              raise_error=False)
    assert response.code == 200


def test_the_default_registry_is_the_nearest_above_the_root(tmp_path, monkeypatch):
    project = tmp_path.resolve() / "project"
    (project / ".mlops").mkdir(parents=True)
    (project / ".mlops" / "registry.db").touch()
    (project / "notebooks").mkdir()
    server = MlopsServer(root_dir=str(project / "notebooks"))
    assert server.registry_url == f"sqlite:///{project / '.mlops' / 'registry.db'}"
    monkeypatch.setenv("MLOPS_REGISTRY_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert MlopsServer(root_dir=str(project)).registry_url == f"sqlite:///{tmp_path / 'elsewhere.db'}"


async def test_a_registry_that_cannot_open_is_named_in_the_error(tmp_path):
    server = MlopsServer(root_dir=str(tmp_path), registry_url="mysql://db/registry")
    with pytest.raises(RegistryUnavailable, match=r"c\.MlopsServer\.registry_url.*mysql://db/registry"):
        await server.run(api.list_models)
