"""A churn model built the way a user builds one: features from a customers table, a training
set inside a run, a fitted classifier registered from that run and promoted to staging."""

import numpy as np
import pandas as pd

import mlops_jupyter as mlops

FEATURES = ["tenure", "spend"]


def customers(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer": np.arange(n),
        "at": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 30, n), unit="D"),
        "tenure": rng.gamma(3.0, 8.0, n).round(1),
        "spend": rng.normal(100.0, 20.0, n).round(2),
    })


def churned(frame, seed=1):
    """Short tenure and low spend churn: the truth the model learns and the labels served later."""
    rng = np.random.default_rng(seed)
    score = -0.08 * (frame["tenure"] - 24) - 0.03 * (frame["spend"] - 100)
    return (score + rng.normal(0, 0.5, len(frame)) > 0).astype(int)


def register_features(table):
    for name in FEATURES:
        mlops.register_feature(name, table[["customer", "at", name]], entity="customer", timestamp="at",
                               code=f"customers[['customer', 'at', {name!r}]]", sources={"customers": table})


def build_churn_model(name="churn"):
    """Features → training set in a run → model registered from that run → staging. Returns the table."""
    from sklearn.linear_model import LogisticRegression

    table = customers()
    register_features(table)
    entities = table[["customer", "at"]].assign(at=table["at"] + pd.Timedelta(hours=1), churned=churned(table))
    with mlops.start_run("train", experiment="churn"):
        frame = mlops.training_set("churn_training", entities, FEATURES, label="churned")
        model = LogisticRegression(max_iter=500).fit(frame[FEATURES], frame["churned"])
        mlops.log_metrics({"accuracy": float(model.score(frame[FEATURES], frame["churned"]))})
        mlops.register_model(model, name, input_example=frame[FEATURES].head(2), primary_metric="accuracy")
    mlops.promote(name, 1, "staging")
    return table, model


def record_served(model, table, *, env="staging", name="churn", version=1, start=None, per_request=5, step=60.0):
    """Log predictions of ``model`` on ``table``'s rows as served requests, through the serving
    log's Store writer; returns the request ids with their rows' true labels."""
    import json
    import time
    import uuid

    start = time.time() - 3600 if start is None else start
    rows, truth = [], {}
    for number, first in enumerate(range(0, len(table), per_request)):
        chunk = table.iloc[first:first + per_request]
        request_id = uuid.uuid4().hex
        records = chunk[FEATURES].to_dict("records")
        rows.append({"id": request_id, "at": start + number * step, "env": env, "kind": "predict",
                     "object_name": name, "version": version, "token_id": None, "status": 200,
                     "latency_ms": 1.0, "rows": len(chunk), "inputs": json.dumps(records),
                     "outputs": json.dumps(model.predict(chunk[FEATURES]).tolist()), "error": None})
        truth[request_id] = churned(chunk).tolist()
    mlops.current_registry().store.record_served_requests(rows)
    return truth
