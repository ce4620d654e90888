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
