"""Monitoring, labels and audit of served predictions: drift against the training set,
performance where labels come back, unhealthy models in %mlops status, served reads counted per day."""

import re
import time

import pandas as pd
import pytest
from IPython.core.error import UsageError
from served_models import build_churn_model, customers, record_served

import mlops_jupyter as mlops
from mlops_jupyter import InvalidInput, NotFound

NOON = pd.Timestamp("2026-03-02 12:00", tz="UTC").timestamp()


def label_frame(truth, flip=False):
    return pd.DataFrame([(request_id, row, 1 - label if flip else label) for request_id, labels in truth.items()
                         for row, label in enumerate(labels)], columns=["request_id", "row", "label"])


def labels_of(name="churn", env="staging"):
    return mlops.current_registry().store.served_labels(name, env)


def test_served_values_like_the_training_set_are_healthy_and_a_shift_is_drift(registry):
    _, model = build_churn_model()
    record_served(model, customers(1000, seed=5), start=NOON)
    calm = mlops.monitor("churn", env="staging")
    assert calm["healthy"] is True and calm["reasons"] == [] and calm["rows"] == 1000
    assert set(calm["drift"]["feature"]) == {"tenure", "spend"} and not calm["drift"]["drifted"].any()
    assert calm["drift"]["psi"].max() < 0.2 and calm["drift"]["ks_pvalue"].min() > 0.01
    assert calm["predictions"]["count"].sum() == 1000 and set(calm["predictions"]["prediction"]) <= {"0", "1"}
    assert mlops.unhealthy_models() == []

    shifted = customers(1000, seed=6).assign(tenure=lambda frame: frame["tenure"] + 15)
    record_served(model, shifted, start=NOON + 86400)
    drifted = mlops.monitor("churn", env="staging", since=NOON + 86400)
    by_feature = drifted["drift"].set_index("feature")
    assert by_feature.loc["tenure", "drifted"] and not by_feature.loc["spend", "drifted"]
    assert by_feature.loc["tenure", "psi"] > 0.2 and by_feature.loc["tenure", "ks_pvalue"] < 1e-6
    assert drifted["healthy"] is False and drifted["reasons"][0].startswith("tenure drifted (PSI ")
    (unhealthy,) = mlops.unhealthy_models()
    assert (unhealthy["model"], unhealthy["env"], unhealthy["version"]) == ("churn", "staging", 1)


def test_too_few_served_rows_give_no_verdict(registry):
    _, model = build_churn_model()
    record_served(model, customers(10, seed=5), start=NOON)
    assert mlops.monitor("churn", env="staging")["healthy"] is None


def test_labels_give_performance_and_a_drop_against_training_marks_unhealthy(registry):
    _, model = build_churn_model()
    truth = record_served(model, customers(600, seed=5), start=NOON, step=600.0)
    assert mlops.log_labels(label_frame(truth)) == 600
    good = mlops.monitor("churn", env="staging")
    performance = good["performance"]
    assert performance["metric"] == "accuracy" and performance["labels"] == 600
    assert performance["training_metric"] == "accuracy" and performance["value"] > 0.8 and not performance["degraded"]
    assert good["healthy"] is True and good["performance_over_time"]["labels"].sum() == 600

    mlops.log_labels(label_frame(truth, flip=True))  # the world changed: yesterday's churners stay
    bad = mlops.monitor("churn", env="staging")
    assert bad["performance"]["degraded"] and bad["performance"]["value"] < 0.2
    assert bad["healthy"] is False and bad["reasons"][-1].startswith("accuracy 0.")
    assert any(row["action"] == "log_labels" and row["detail"] == {"env": "staging", "labels": 600}
               for row in mlops.audit("churn"))


def test_a_dict_labels_the_first_row_of_each_request(registry):
    _, model = build_churn_model()
    truth = record_served(model, customers(4, seed=5), per_request=1, start=NOON)
    mlops.log_labels({request_id: labels[0] for request_id, labels in truth.items()})
    assert sorted(labels_of().values()) == sorted(str(labels[0]) for labels in truth.values())


@pytest.mark.parametrize("labels, error, message", [
    ({"nope": 1}, NotFound, "no served prediction with request id 'nope'; no labels were written"),
    (pd.DataFrame({"request_id": ["REAL"], "row": [9], "label": [1]}), InvalidInput, "row 9 is not one of them"),
    (pd.DataFrame({"request_id": ["REAL", "REAL"], "label": [1, 0]}), InvalidInput, "row 0 is labelled twice"),
    (pd.DataFrame({"request": ["REAL"], "label": [1]}), InvalidInput, "labels need a column 'request_id'"),
    (pd.DataFrame({"request_id": ["REAL"], "label": [None]}), InvalidInput, "a label is missing"),
    ([("REAL", 1)], InvalidInput, "labels must be a dict of request id to label or a DataFrame"),
])
def test_bad_labels_are_one_line_and_write_nothing(registry, labels, error, message):
    _, model = build_churn_model()
    (real, *_) = record_served(model, customers(10, seed=5), start=NOON)
    if isinstance(labels, pd.DataFrame):
        labels = labels.replace("REAL", real)
    mlops.log_labels({real: 1})
    before = (mlops.registry_counts(), labels_of())
    with pytest.raises(error, match=re.escape(message)) as raised:
        mlops.log_labels(labels)
    assert "\n" not in str(raised.value)
    assert (mlops.registry_counts(), labels_of()) == before


def test_audit_counts_served_reads_per_day_beside_who_created_and_promoted(registry):
    _, model = build_churn_model()
    token = mlops.create_token("staging")
    table = customers(400, seed=5)
    record_served(model, table, start=NOON, step=1.0)  # 80 requests on one day
    record_served(model, table.head(50), start=NOON + 86400, step=1.0)  # 10 the next
    store = mlops.current_registry().store
    store.record_served_requests([{  # one refused request of the token's
        "id": "f" * 32, "at": NOON + 5, "env": "staging", "kind": "predict", "object_name": "churn", "version": 1,
        "token_id": token["id"], "status": 422, "latency_ms": 1.0, "rows": 0, "inputs": None, "outputs": None,
        "error": "records[0]: missing column 'tenure'"}])
    report = mlops.audit_report("churn")
    served = report[report["action"] == "served predict"]
    assert sorted(served["count"]) == [1, 10, 80]
    assert served.iloc[0]["at"] == pd.Timestamp("2026-03-03", tz="UTC")
    refused = served[served["user"] == "tester"].iloc[0]
    assert refused["count"] == 1 and refused["detail"]["errors"] == 1 and refused["detail"]["token"] == token["id"]
    done = set(zip(report["action"], report["object_name"]))
    assert {("create", "churn"), ("register", "churn"), ("promote", "churn")} <= done
    assert len(mlops.audit_report("churn", since=NOON + 86400).query("action == 'served predict'")) == 1
    mlops.load_model("churn@staging")  # a read is recorded too: who loaded which version
    (read,) = mlops.audit_report("churn").query("action == 'read'").to_dict("records")
    assert read["user"] == "tester" and read["detail"] == {"version": 1, "reference": "churn@staging"}
    assert mlops.audit_report(user="nobody").empty


def test_the_magics_monitor_audit_and_status(shell, capsys):
    _, model = build_churn_model()
    shifted = customers(500, seed=6).assign(tenure=lambda frame: frame["tenure"] + 15)
    record_served(model, shifted, start=time.time() - 7200)
    result = shell.run_line_magic("mlops", "monitor churn --env staging --since 3h")
    assert result["healthy"] is False
    shown = capsys.readouterr().out
    assert "churn v1 in staging: UNHEALTHY" in shown and "tenure drifted" in shown
    from mlops_jupyter.jupyter.display import monitor_view

    assert "data:image/png;base64," in monitor_view(result).html()
    status = shell.run_line_magic("mlops", "status")
    assert status["unhealthy"][0]["model"] == "churn"
    assert "unhealthy   churn@staging v1: tenure drifted" in capsys.readouterr().out
    frame = shell.run_line_magic("mlops", "audit --object churn --since 1d")
    assert {"monitor", "served predict", "promote"} <= set(frame["action"])


@pytest.mark.parametrize("text, message", [
    ("monitor chrun --env staging", "no registered model 'chrun' (did you mean 'churn'?)"),
    ("monitor churn", "model 'churn' has no version with alias 'production'; its aliases: staging"),
    ("monitor churn --env staging --since yesterday", "--since takes a duration like 24h or 7d"),
    ("monitor churn --env ../x", "env"),
    ("audit --since soon", "--since takes a duration"),
])
def test_bad_monitor_and_audit_input_is_one_line_and_changes_nothing(shell, text, message):
    build_churn_model()
    before = mlops.registry_counts()
    with pytest.raises(UsageError, match=re.escape(message)) as raised:
        shell.run_line_magic("mlops", text)
    assert "\n" not in str(raised.value)
    assert mlops.registry_counts() == before

