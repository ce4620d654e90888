"""`mlops serve`: the HTTP API through Starlette's ASGI test client and on a real uvicorn."""

import asyncio
import logging
import socket
import threading
import time
from contextlib import contextmanager

import http_load
import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

import mlops_jupyter as mlops
from mlops_jupyter.serving.app import ServingApp

FEATURES = ["tenure", "spend"]


def _customers(n=50):
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "customer": np.arange(n),
        "at": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 30, n), unit="D"),
        "tenure": rng.gamma(3.0, 8.0, n).round(1),
        "spend": rng.normal(100.0, 20.0, n).round(2),
    })


def _fit(table, flip=False):
    from sklearn.linear_model import LogisticRegression

    labels = ((table["tenure"] < 24) ^ flip).astype(int)
    return LogisticRegression(max_iter=500).fit(table[FEATURES], labels)


@pytest.fixture
def served(registry):
    """Features materialised in staging, model ``churn`` v1 holding ``staging``, and tokens."""
    table = _customers()
    for name in FEATURES:
        mlops.register_feature(name, table[["customer", "at", name]], entity="customer", timestamp="at")
    mlops.materialize(FEATURES, env="staging")
    mlops.register_model(_fit(table), "churn", input_example=table[FEATURES].head(2))
    mlops.promote("churn", 1, "staging")
    tokens = {
        "serve": mlops.create_token("staging")["token"],
        "admin": mlops.create_token("staging", role="admin")["token"],
        "production": mlops.create_token("production")["token"],
    }
    return table, tokens


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(served):
    state = ServingApp("staging", max_body_bytes=4096)
    with TestClient(state.app) as test_client:
        test_client.state = state
        yield test_client


def test_features_one_and_many_and_a_prediction(client, served):
    table, tokens = served
    row = table.iloc[3]
    one = client.get("/features/tenure/3", headers=_auth(tokens["serve"]))
    assert one.status_code == 200 and one.json()["value"] == row["tenure"]
    assert one.headers["X-Request-Id"] == one.json()["request_id"]
    many = client.post("/features", headers=_auth(tokens["serve"]), json={"features": FEATURES, "entities": [3, 4]})
    assert many.json()["features"]["spend"] == [table.iloc[3]["spend"], table.iloc[4]["spend"]]
    records = [{"tenure": 3.0, "spend": 80.5}, {"tenure": 60.0, "spend": 120}]
    predicted = client.post("/models/churn/predict", headers=_auth(tokens["serve"]), json={"records": records})
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["version"] == 1
    expected = mlops.load_model("churn@staging").predict(pd.DataFrame(records)).tolist()
    assert predicted.json()["predictions"] == expected
    by_entity = client.post("/models/churn/predict", headers=_auth(tokens["serve"]), json={"entities": [3]})
    assert by_entity.json()["predictions"] == mlops.load_model("churn/1").predict(table.iloc[[3]][FEATURES]).tolist()


def test_health_ready_and_metrics(client, served):
    _, tokens = served
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True, "env": "staging",
                                           "models": {"churn": {"version": 1, "alias": "staging"}}}
    client.get("/features/tenure/3", headers=_auth(tokens["serve"]))
    assert client.get("/metrics").status_code == 401
    text = client.get("/metrics", headers=_auth(tokens["serve"])).text
    assert 'mlops_requests_total{route="/features/{name}/{entity}",status="200"} 1' in text
    assert 'mlops_request_duration_seconds_count{route="/features/{name}/{entity}"} 1' in text
    assert 'mlops_model_version{model="churn",env="staging"} 1' in text


@pytest.mark.parametrize("headers, status, message", [
    ({}, 401, "missing bearer token"),
    ({"Authorization": "Basic abc"}, 401, "must be 'Bearer <token>'"),
    ({"Authorization": "Bearer mlops_not-a-token"}, 401, "unknown or revoked token"),
])
def test_requests_without_a_valid_token_are_refused(client, headers, status, message):
    response = client.get("/features/tenure/3", headers=headers)
    assert response.status_code == status and message in response.json()["error"]


def test_a_token_of_another_env_or_role_is_forbidden(client, served):
    _, tokens = served
    response = client.get("/features/tenure/3", headers=_auth(tokens["production"]))
    assert response.status_code == 403 and "'production'" in response.json()["error"]
    assert client.post("/admin/reload", headers=_auth(tokens["serve"])).status_code == 403
    assert client.post("/admin/reload", headers=_auth(tokens["admin"])).status_code == 200


def test_a_revoked_token_is_refused_after_the_next_refresh(client, served):
    _, tokens = served
    assert client.get("/features/tenure/3", headers=_auth(tokens["serve"])).status_code == 200
    (entry,) = [t for t in mlops.list_tokens() if t["role"] == "serve" and t["env"] == "staging"]
    mlops.revoke_token(entry["id"])
    client.post("/admin/reload", headers=_auth(tokens["admin"]))
    assert client.get("/features/tenure/3", headers=_auth(tokens["serve"])).status_code == 401


@pytest.mark.parametrize("body, field, message", [
    (b'{"records": [{"tenure": 1,', "body at character 26", "malformed JSON at line 1 column 27"),
    (b"[1, 2]", "body", "must be a JSON object"),
    (b'{"records": []}', "records", "expected a non-empty list"),
    (b'{"records": [{"tenure": 1}]}', "records[0].spend", "missing column 'spend'"),
    (b'{"records": [{"tenure": 1, "spend": 2, "age": 3}]}', "records[0].age", "unknown column 'age'"),
    (b'{"records": [{"tenure": "long", "spend": 2}]}', "records[0].tenure", 'expected a number, got "long"'),
    (b'{"records": [{"tenure": 1, "spend": true}]}', "records[0].spend", "expected a number, got true"),
    (b'{"records": [{"tenure": 1, "spend": 2}], "entities": [1]}', "records", "not both"),
    (b'{"entities": [1.5]}', "entities[0]", "unexpected value 1.5"),
])
def test_bad_prediction_input_is_a_422_naming_the_field(client, served, body, field, message):
    _, tokens = served
    response = client.post("/models/churn/predict", headers=_auth(tokens["serve"]), content=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field and message in response.json()["error"]


def test_unknown_entities_models_and_features_are_404_naming_them(client, served):
    _, tokens = served
    headers = _auth(tokens["serve"])
    response = client.post("/models/churn/predict", headers=headers, json={"entities": [3, 9999]})
    assert response.status_code == 404 and "entity 9999" in response.json()["error"]
    response = client.get("/features/tenure/nobody", headers=headers)
    assert response.status_code == 404 and "entity 'nobody'" in response.json()["error"]
    response = client.post("/models/fraud/predict", headers=headers, json={"records": [{"tenure": 1, "spend": 2}]})
    assert response.status_code == 404 and "'fraud'" in response.json()["error"]
    response = client.get("/features/tenur/3", headers=headers)
    assert response.status_code == 404 and "'tenur'" in response.json()["error"]


def test_a_body_over_the_limit_is_413(client, served):
    _, tokens = served
    records = [{"tenure": 1.0, "spend": 2.0}] * 200
    response = client.post("/models/churn/predict", headers=_auth(tokens["serve"]), json={"records": records})
    assert response.status_code == 413 and "limit of 4096" in response.json()["error"]


def test_the_server_follows_the_alias_without_a_restart(client, served):
    table, tokens = served
    records = {"records": [{"tenure": float(t), "spend": 100.0} for t in range(0, 60, 5)]}
    before = client.post("/models/churn/predict", headers=_auth(tokens["serve"]), json=records).json()
    mlops.register_model(_fit(table, flip=True), "churn", input_example=table[FEATURES].head(2))
    mlops.promote("churn", 2, "staging", force=True, reason="test: flipped labels")
    deadline = time.monotonic() + 5
    while (after := client.post("/models/churn/predict", headers=_auth(tokens["serve"]), json=records).json())[
            "version"] == 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert after["version"] == 2
    assert after["predictions"] == [1 - p for p in before["predictions"]]


def test_every_served_request_is_recorded_with_inputs_and_outputs(served):
    _, tokens = served
    state = ServingApp("staging", log_flush_seconds=0.2)
    with TestClient(state.app) as client:
        ids = [client.get(f"/features/tenure/{i}", headers=_auth(tokens["serve"])).json()["request_id"]
               for i in range(20)]
        refused = client.get("/features/tenure/1").json()["request_id"]
        predicted = client.post("/models/churn/predict", headers=_auth(tokens["serve"]),
                                json={"records": [{"tenure": 3.0, "spend": 80.0}]}).json()
    assert state.request_log.batches_written < 22  # batched, not one transaction per request
    rows = {row["id"]: row for row in mlops.served_requests(env="staging")}
    assert set(rows) == {*ids, refused, predicted["request_id"]}
    first = rows[ids[0]]
    assert (first["kind"], first["object_name"], first["status"], first["inputs"]) == ("features", "tenure", 200, ["0"])
    assert first["outputs"][0]["tenure"] is not None and first["token_id"].startswith("tok_")
    assert (rows[refused]["status"], rows[refused]["token_id"], rows[refused]["inputs"]) == (401, None, None)
    row = rows[predicted["request_id"]]
    assert (row["kind"], row["object_name"], row["version"]) == ("predict", "churn", 1)
    assert (row["inputs"], row["outputs"]) == ([{"tenure": 3.0, "spend": 80.0}], predicted["predictions"])
    assert mlops.served_requests("churn", kind="predict") == [row]


def test_tokens_are_stored_as_hashes_and_never_logged(served, registry_url, caplog):
    _, tokens = served
    caplog.set_level(logging.DEBUG)
    with TestClient(ServingApp("staging").app) as client:
        client.get("/features/tenure/1", headers=_auth(tokens["serve"]))
        client.get("/features/tenure/1", headers=_auth(tokens["production"]))
        client.get("/features/tenure/1", headers=_auth(tokens["serve"] + "x"))
    import sqlalchemy as sa

    engine = sa.create_engine(registry_url)
    with engine.connect() as connection:
        dump = "\n".join(str(row) for table in ("api_tokens", "audit_log", "served_requests")
                         for row in connection.execute(sa.text(f"SELECT * FROM {table}")))
    engine.dispose()
    for token in tokens.values():
        assert token not in dump and token not in caplog.text
        assert token[len("mlops_"):] not in dump


# ---- a real uvicorn on 127.0.0.1 ---------------------------------------------------------------


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running(state):
    """``state``'s app on a real uvicorn at a free loopback port, stopped (and its log flushed) on exit."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(state.app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_real_uvicorn_serves_and_refuses(served):
    import httpx

    _, tokens = served
    with running(ServingApp("staging")) as port:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        assert httpx.get(f"{base}/features/tenure/3").status_code == 401
        response = httpx.post(f"{base}/models/churn/predict", headers=_auth(tokens["serve"]),
                              json={"records": [{"tenure": 3.0, "spend": 80.0}]})
        assert response.status_code == 200 and response.json()["version"] == 1
        response = httpx.post(f"{base}/features", headers=_auth(tokens["serve"]), content=b'{"features": ["tenure"],')
        assert response.status_code == 422 and "malformed JSON" in response.json()["error"]
        big = b'{"features": ["tenure"], "entities": [' + b"1," * 600_000 + b"1]}"
        assert httpx.post(f"{base}/features", headers=_auth(tokens["serve"]), content=big).status_code == 413


def test_a_small_load_loses_nothing(served):
    """1,000 requests, 16 at a time, over keep-alive connections: no errors, every one recorded by shutdown."""
    _, tokens = served
    with running(ServingApp("staging")) as port:
        payloads = [http_load.request_bytes("GET", f"/features/tenure/{i}", None, tokens["serve"], "127.0.0.1")
                    for i in range(50)]
        result = asyncio.run(http_load.load("127.0.0.1", port, payloads, requests=1000, concurrency=16))
    assert result["errors"] == 0 and len(result["latencies"]) == 1000
    assert len(mlops.served_requests(env="staging")) == 1000


def test_the_magic_serves_in_the_background_until_stopped(shell, served, capsys):
    import httpx

    _, tokens = served
    port = _free_port()
    server = shell.run_line_magic("mlops", f"serve --env staging --port {port}")
    assert f"serving staging on http://127.0.0.1:{port} (models: churn v1)" in capsys.readouterr().out
    response = httpx.get(f"{server.url}/features/tenure/3", headers=_auth(tokens["serve"]))
    assert response.status_code == 200
    shell.run_line_magic("mlops", "serve status")
    assert "models: churn v1; " in capsys.readouterr().out
    shell.run_line_magic("mlops", "serve stop")
    assert "1 requests recorded" in capsys.readouterr().out
    assert len(mlops.served_requests()) == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health")


def test_numeric_models_predict_on_arrays_and_name_selecting_pipelines_keep_dataframes():
    import numpy
    import pandas
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlops_jupyter.serving.app import ServedModel, ServingApp, _array_predicts_the_same

    X = pandas.DataFrame({"a": numpy.linspace(0, 1, 40), "b": numpy.linspace(1, 0, 40)})
    y = (X["a"] > 0.5).astype(int)
    plain = LogisticRegression().fit(X, y)
    by_name = make_pipeline(ColumnTransformer([("scaled", StandardScaler(), ["b", "a"])]),
                            LogisticRegression()).fit(X, y)
    records = [{"a": 0.9, "b": 0.1}, {"a": 0.1, "b": 0.9}]
    for model, fast in ((plain, True), (by_name, False)):
        served = ServedModel("m", 1, model, ["a", "b"], ["number", "number"], 2)
        served.takes_array = _array_predicts_the_same(served)
        assert served.takes_array is fast
        assert ServingApp._predict(served, records).tolist() == model.predict(pandas.DataFrame(records)).tolist() == [1, 0]
    text = ServedModel("m", 1, plain, ["a", "b"], ["text", "number"], 2)
    assert not _array_predicts_the_same(text)
