"""The feature registry through the API: versions, expectations, training sets, on both databases."""

import numpy as np
import pandas as pd
import pytest

import mlops_jupyter as mlops
from mlops_jupyter import GateFailed, InvalidInput, NotFound


@pytest.fixture
def events():
    """Purchases of three customers over a few days."""
    return pd.DataFrame(
        {
            "customer": [1, 1, 2, 2, 3, 1],
            "at": pd.to_datetime(["2026-01-01", "2026-01-03", "2026-01-02", "2026-01-05", "2026-01-04", "2026-01-06"]),
            "amount": [10.0, 30.0, 5.0, 7.0, 100.0, 20.0],
        }
    )


def spend(events):
    frame = events.sort_values("at")
    frame["spend"] = frame.groupby("customer")["amount"].cumsum()
    return frame[["customer", "at", "spend"]]


def test_a_decorated_function_registers_versions_when_code_or_sources_change(registry, events):
    total_spend = mlops.feature("total_spend", entity="customer", timestamp="at", description="running total")(spend)
    values = total_spend(events)
    first = mlops.get_feature("total_spend")
    assert (first["version"], first["rows"], first["dtype"]) == (1, 6, "float64")
    assert first["sources"][0]["name"] == "events" and first["sources"][0]["rows"] == 6
    assert "cumsum" in first["code"] and first["owner"] == "tester"
    assert first["statistics"]["max"] == 100.0 and first["statistics"]["count"] == 6
    stored = mlops.feature_values("total_spend").sort_values(["customer", "at"]).reset_index(drop=True)
    computed = values.rename(columns={"spend": "total_spend"}).sort_values(["customer", "at"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, computed)
    total_spend(events)  # the same again: no new version
    assert mlops.get_feature("total_spend")["version"] == 1
    total_spend(events.assign(amount=events["amount"] * 2))  # new source data: a new version
    assert mlops.get_feature("total_spend")["version"] == 2
    assert mlops.get_feature("total_spend@1")["statistics"]["max"] == 100.0


def test_expectations_refuse_a_bad_version_and_register_nothing(registry, events):
    mlops.register_feature("spend", spend(events), entity="customer", timestamp="at")
    report = mlops.expect("spend", "min=0", "max=1000", "not_null")
    assert report.passed
    before = mlops.registry_counts()
    bad = spend(events.assign(amount=-events["amount"]))
    with pytest.raises(GateFailed, match="min=0 failed: 6 of 6 rows below 0"):
        mlops.register_feature("spend", bad, entity="customer", timestamp="at")
    assert mlops.registry_counts() == before
    assert mlops.get_feature("spend")["version"] == 1


def test_callable_expectations_apply_in_this_process(registry, events):
    mlops.register_feature("spend", spend(events), entity="customer", timestamp="at")
    mlops.expect("spend", "min=0", lambda s: s < 500)
    with pytest.raises(GateFailed):
        mlops.register_feature("spend", spend(events.assign(amount=events["amount"] * 10)), entity="customer",
                               timestamp="at")


@pytest.mark.parametrize(
    "values, message",
    [
        (pd.DataFrame({"customer": [1], "value": [1.0]}), "no column 'at'"),
        (pd.DataFrame({"customer": [1], "at": ["2026-01-01"], "v": [1.0]}), "not datetimes"),
        (pd.DataFrame({"customer": [1], "at": [pd.Timestamp("2026-01-01")], "a": [1], "b": [2]}), "one value column"),
        ([1, 2, 3], "must be a DataFrame or Series"),
        (pd.Series([1.0, 2.0]), "needs an index with levels"),
    ],
)
def test_bad_feature_results_register_nothing(registry, values, message):
    with pytest.raises(InvalidInput, match=message):
        mlops.register_feature("f", values, entity="customer", timestamp="at")
    assert mlops.list_features() == []


def test_mixed_time_zones_are_refused(registry):
    stamps = [pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-01-01", tz="Europe/Paris")]
    values = pd.DataFrame({"customer": [1, 2], "at": pd.Series(stamps, dtype=object), "v": [1.0, 2.0]})
    with pytest.raises(InvalidInput, match="mixes time zones"):
        mlops.register_feature("f", values, entity="customer", timestamp="at")


def test_expectations_on_an_unknown_feature_and_malformed_rules_change_nothing(registry, events):
    with pytest.raises(NotFound, match="no feature 'nope'"):
        mlops.expect("nope", "min=0")
    mlops.register_feature("spend", spend(events), entity="customer", timestamp="at")
    before = mlops.registry_counts()
    with pytest.raises(InvalidInput, match="mni=0"):
        mlops.expect("spend", "mni=0")
    assert mlops.registry_counts() == before


def test_a_feature_keeps_its_keys(registry, events):
    mlops.register_feature("spend", spend(events), entity="customer", timestamp="at")
    other = spend(events).rename(columns={"customer": "client"})
    with pytest.raises(InvalidInput, match="keyed by"):
        mlops.register_feature("spend", other, entity="client", timestamp="at")


def test_training_sets_are_point_in_time_correct_and_keep_every_row(registry, events):
    mlops.register_feature("spend", spend(events), entity="customer", timestamp="at")
    visits = events.assign(visits=np.arange(len(events)))[["customer", "at", "visits"]]
    mlops.register_feature("visits", visits, entity="customer", timestamp="at")
    labels = pd.DataFrame(
        {
            "customer": [1, 1, 2, 4, 1],
            "at": pd.to_datetime(["2026-01-02", "2026-01-03", "2026-01-01", "2026-01-09", "2026-01-02"]),
            "churned": [0, 1, 0, 1, 0],
        }
    )
    with mlops.start_run() as run:
        built = mlops.training_set("churn-train", labels, ["spend", "visits@1"], label="churned")
    np.testing.assert_array_equal(built["spend"], [10.0, 40.0, np.nan, np.nan, 10.0])
    np.testing.assert_array_equal(built["visits"], [0, 1, np.nan, np.nan, 0])
    assert built.index.tolist() == labels.index.tolist() and built["churned"].tolist() == [0, 1, 0, 1, 0]
    (used,) = mlops.training_sets_using("spend")
    assert (used["name"], used["version"], used["run_id"]) == ("churn-train", 1, run.id)
    (dataset,) = mlops.get_run(run.id)["datasets"]
    assert (dataset["name"], dataset["digest"]) == ("churn-train", used["digest"])


def test_training_set_mistakes_are_clear(registry, events):
    mlops.register_feature("spend", spend(events), entity="customer", timestamp="at")
    labels = events[["customer", "at"]]
    for call, error, message in (
        (lambda: mlops.training_set("t", labels, ["nope"]), NotFound, "no feature 'nope'"),
        (lambda: mlops.training_set("t", labels, []), InvalidInput, "at least one feature"),
        (lambda: mlops.training_set("t", labels.drop(columns="at"), ["spend"]), InvalidInput, "no column 'at'"),
        (lambda: mlops.training_set("t", labels, ["spend"], label="churned"), InvalidInput, "no column 'churned'"),
        (lambda: mlops.training_set("t", labels, ["spend@9"]), NotFound, "no version 9"),
        (lambda: mlops.training_set("t", "labels", ["spend"]), InvalidInput, "must be a DataFrame"),
    ):
        before = mlops.registry_counts()
        with pytest.raises(error, match=message):
            call()
        assert mlops.registry_counts() == before


def test_features_can_be_browsed_and_searched(registry, events):
    mlops.register_feature("spend", spend(events), entity="customer", timestamp="at", description="money spent")
    mlops.register_feature("visits", events.assign(v=1)[["customer", "at", "v"]], entity="customer", timestamp="at")
    assert [f["name"] for f in mlops.list_features()] == ["spend", "visits"]
    assert [f["name"] for f in mlops.list_features("MONEY")] == ["spend"]
    assert mlops.list_features()[1]["latest_version"] == 1


def test_versions_are_listed_and_compared(registry, events):
    mlops.register_feature("spend", spend(events), entity="customer", timestamp="at")
    with pytest.raises(NotFound, match="only one version"):
        mlops.compare_feature_versions("spend")
    mlops.register_feature("spend", spend(events.assign(amount=events["amount"] * 10)), entity="customer",
                           timestamp="at")
    assert [v["version"] for v in mlops.list_feature_versions("spend")] == [2, 1]
    difference = mlops.compare_feature_versions("spend")
    assert difference["psi_band"] == "major shift" and difference["psi"] > 0.25
    assert "PSI" in difference["summary"]


def test_lineage_reaches_the_models_trained_on_a_feature(registry, events):
    mlops.register_feature("spend", spend(events), entity="customer", timestamp="at")
    labels = events[["customer", "at"]].assign(y=[0, 1, 0, 1, 0, 1])
    with mlops.start_run():
        built = mlops.training_set("train", labels, "spend", label="y")
        mlops.register_model({"weights": built["spend"].tolist()}, "churn")
    (used,) = mlops.training_sets_using("spend")
    assert used["models"] == ["churn v1"]
