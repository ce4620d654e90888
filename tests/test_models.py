"""The model registry: safe saving, signatures, aliases, promotion gates and their history."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingClassifier, IsolationForest, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC

import mlops_jupyter as mlops
from mlops_jupyter import AlreadyExists, GateFailed, IntegrityError, InvalidInput, NotFound
from mlops_jupyter.models import serialize
from mlops_jupyter.models.gates import Verdict


@pytest.fixture(scope="module")
def cancer():
    frame = load_breast_cancer(as_frame=True).frame
    return frame.drop(columns="target").iloc[:, :6], frame["target"]


def fitted_models(X, y):
    """What a scikit-learn user registers: estimators, pipelines, searches, mixed-type columns."""
    mixed = X.assign(size=np.where(X.iloc[:, 0] > X.iloc[:, 0].median(), "big", "small"))
    columns = ColumnTransformer([("num", StandardScaler(), list(X.columns)), ("cat", OneHotEncoder(), ["size"])])
    return {
        "logistic": LogisticRegression(max_iter=500).fit(X, y),
        "forest": RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y),
        "hist_gb": HistGradientBoostingClassifier(max_iter=5).fit(X, y),
        "svc": SVC(probability=True, random_state=0).fit(X, y),
        "mlp": MLPClassifier(hidden_layer_sizes=(4,), max_iter=50, random_state=0).fit(X, y),
        "pipeline": make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y),
        "column_transformer": make_pipeline(columns, LogisticRegression(max_iter=500)).fit(mixed, y),
        "grid_search": GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.1, 1.0]}, cv=2).fit(X, y),
        "log_transform": make_pipeline(FunctionTransformer(np.log1p), Ridge()).fit(X, y),
        "kmeans": KMeans(n_clusters=2, n_init=2, random_state=0).fit(X),
        "isolation_forest": IsolationForest(n_estimators=5, random_state=0).fit(X),
    }, mixed


def test_every_common_scikit_learn_object_round_trips(tmp_path, cancer):
    # Saving does not depend on the database, so SQLite alone is enough here.
    mlops.connect(f"sqlite:///{tmp_path / 'registry.db'}")
    X, y = cancer
    models, mixed = fitted_models(X, y)
    for name, model in models.items():
        mlops.register_model(model, name)
        loaded = mlops.load_model(f"{name}/1")
        data = mixed if name == "column_transformer" else X
        method = "predict" if hasattr(model, "predict") else "transform"
        np.testing.assert_array_equal(getattr(loaded, method)(data), getattr(model, method)(data), err_msg=name)


def test_a_version_records_its_run_signature_and_metrics(registry, cancer):
    X, y = cancer
    with mlops.start_run() as run:
        mlops.log_dataset(X, "train")
        mlops.log_metric("auc", 0.97)
        version = mlops.register_model(LogisticRegression(max_iter=500).fit(X, y), "churn", description="first")
    assert version["version"] == 1 and version["run_id"] == run.id
    assert version["metrics"] == {"auc": 0.97}
    assert version["model_class"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert version["signature"]["inputs"][0] == {"name": X.columns[0], "dtype": "float64"}
    assert version["signature"]["n_features"] == 6
    assert version["signature"]["outputs"] == {"kind": "class", "classes": [0, 1]}
    assert version["created_by"] == "tester" and version["description"] == "first"


def test_signature_from_an_input_example(registry):
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    version = mlops.register_model(Ridge().fit(X.values, y), "diabetes", input_example=X.astype("float32").head(2))
    assert {i["dtype"] for i in version["signature"]["inputs"]} == {"float32"}
    assert version["signature"]["outputs"] == {"kind": "value"}


def test_registering_the_same_bytes_twice_is_refused(registry, cancer):
    X, y = cancer
    model = LogisticRegression(max_iter=500).fit(X, y)
    mlops.register_model(model, "churn")
    before = mlops.registry_counts()
    with pytest.raises(AlreadyExists, match="version 1 already holds this exact model"):
        mlops.register_model(model, "churn")
    assert mlops.registry_counts() == before


def test_objects_skops_cannot_save_are_refused_with_the_reason(registry, cancer):
    X, y = cancer
    model = make_pipeline(FunctionTransformer(lambda v: v * 2), LogisticRegression(max_iter=500)).fit(X, y)
    before = mlops.registry_counts()
    with pytest.raises(InvalidInput, match="cannot save .* safely with skops"):
        mlops.register_model(model, "lambda-model")
    assert mlops.registry_counts() == before


@pytest.mark.parametrize("name", ["../x", "/abs", "a\x00b", ".hidden", "x" * 256, "name@alias", ""])
def test_bad_model_names_are_refused(registry, cancer, name):
    X, y = cancer
    with pytest.raises(InvalidInput):
        mlops.register_model(LogisticRegression().fit(X, y), name)
    assert mlops.registry_counts()["model_versions"] == 0


@pytest.fixture(scope="module")
def two_fitted(cancer):
    X, y = cancer
    return [LogisticRegression(C=c, max_iter=500).fit(X, y) for c in (1.0, 0.5)]


@pytest.fixture
def two_versions(registry, cancer, two_fitted):
    """Model 'churn': v1 with auc 0.90, v2 with auc 0.80 (worse)."""
    for auc, model in zip((0.90, 0.80), two_fitted):
        with mlops.start_run():
            mlops.log_metric("auc", auc)
            mlops.register_model(model, "churn")
    return cancer[0]


def test_promote_to_staging_then_production_and_load_by_alias(two_versions):
    X = two_versions
    mlops.promote("churn", 1, to="staging", reason="first candidate")
    result = mlops.promote("churn", 1, to="production")
    assert result["changed"] and result["from_version"] is None
    assert mlops.get_model_version("churn@production")["aliases"] == ["production", "staging"]
    model = mlops.load_model("churn@production")
    assert model.predict(X).shape == (len(X),)
    assert mlops.load_model("churn@latest").C == 0.5
    history = mlops.model_history("churn")
    assert [(h["alias"], h["from_version"], h["to_version"], h["reason"], h["user"]) for h in history] == [
        ("staging", None, 1, "first candidate", "tester"),
        ("production", None, 1, None, "tester"),
    ]


def test_the_default_gate_refuses_a_worse_production_version(two_versions):
    mlops.promote("churn", 1, to="production")
    before = mlops.registry_counts()
    with pytest.raises(GateFailed, match=r"worse: auc 0.8 vs 0.9 for production \(v1\)") as failure:
        mlops.promote("churn", 2, to="production")
    assert failure.value.verdicts[0].passed is False
    assert mlops.registry_counts() == before
    assert mlops.get_model_version("churn@production")["version"] == 1
    mlops.promote("churn", 2, to="staging")  # staging takes any version


def test_forcing_a_promotion_needs_a_reason_and_is_recorded(two_versions):
    mlops.promote("churn", 1, to="production")
    with pytest.raises(InvalidInput, match="needs a reason"):
        mlops.promote("churn", 2, to="production", force=True)
    mlops.promote("churn", 2, to="production", force=True, reason="v1 leaks the label")
    last = mlops.model_history("churn")[-1]
    assert (last["from_version"], last["to_version"], last["forced"], last["reason"]) == (1, 2, True, "v1 leaks the label")
    assert last["verdicts"][0]["passed"] is False
    assert mlops.audit("churn")[0]["detail"]["forced"] is True


def test_the_gate_metric_and_direction_can_be_configured(registry, cancer):
    X, y = cancer
    for loss, c in ((0.3, 1.0), (0.2, 0.5)):
        with mlops.start_run():
            mlops.log_metrics({"auc": 1 - loss, "log_loss": loss})
            mlops.register_model(
                LogisticRegression(C=c, max_iter=500).fit(X, y), "m", primary_metric="log_loss", higher_is_better=False
            )
    mlops.promote("m", 1, to="production")
    result = mlops.promote("m", 2, to="production")
    assert "log_loss 0.2 vs 0.3" in result["verdicts"][0]["message"]


def test_custom_gates_plug_in(two_versions):
    def needs_reason(promotion):
        return Verdict("needs_reason", False, f"{promotion.alias} needs sign-off")

    with pytest.raises(GateFailed, match="staging needs sign-off"):
        mlops.promote("churn", 1, to="staging", gates=[needs_reason])
    assert mlops.model_history("churn") == []


def test_check_promotion_shows_the_gates_verdict_and_changes_nothing(two_versions, registry):
    mlops.promote("churn", 1, to="production")
    before = mlops.registry_counts()
    worse = mlops.check_promotion("churn", 2, "production")
    assert not worse["passed"] and worse["changed"] and worse["from_version"] == 1
    assert any(not v["passed"] and "auc" in v["message"] for v in worse["verdicts"])
    assert mlops.check_promotion("churn", 2, "staging")["passed"]
    assert mlops.check_promotion("churn", 1, "production") == {
        "model": "churn", "alias": "production", "from_version": 1, "to_version": 1, "verdicts": [],
        "passed": True, "changed": False}
    assert mlops.registry_counts() == before
    with pytest.raises(NotFound):
        mlops.check_promotion("churn", 9, "staging")


def test_promoting_the_current_holder_again_changes_nothing(two_versions):
    mlops.promote("churn", 1, to="staging")
    assert mlops.promote("churn", 1, to="staging")["changed"] is False
    assert len(mlops.model_history("churn")) == 1


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: mlops.promote("churn", 9, to="staging"), NotFound),
        (lambda: mlops.promote("nope", 1, to="staging"), NotFound),
        (lambda: mlops.promote("churn", "one", to="staging"), InvalidInput),
        (lambda: mlops.promote("churn", 0, to="staging"), InvalidInput),
        (lambda: mlops.promote("churn", 1, to="latest"), InvalidInput),
        (lambda: mlops.promote("churn", 1, to="../prod"), InvalidInput),
        (lambda: mlops.demote("churn", "production"), NotFound),
        (lambda: mlops.load_model("churn"), InvalidInput),
        (lambda: mlops.load_model("churn@nowhere"), NotFound),
        (lambda: mlops.load_model("churn/7"), NotFound),
        (lambda: mlops.load_model("chrun@latest"), NotFound),
    ],
)
def test_bad_promotions_and_references_leave_the_registry_unchanged(two_versions, call, error):
    before = mlops.registry_counts()
    with pytest.raises(error):
        call()
    assert mlops.registry_counts() == before


def test_unknown_model_suggests_the_nearest(two_versions):
    with pytest.raises(NotFound, match="did you mean 'churn'"):
        mlops.load_model("chrun@latest")


def test_demote_removes_an_alias_and_is_recorded(two_versions):
    mlops.promote("churn", 1, to="staging")
    mlops.demote("churn", "staging", reason="rollback")
    with pytest.raises(NotFound):
        mlops.load_model("churn@staging")
    assert mlops.model_history("churn")[-1]["to_version"] is None


def test_a_tampered_or_missing_model_file_is_refused(two_versions, registry):
    entry = mlops.get_model_version("churn/1")
    location = registry.artifacts.location(entry["artifact_sha256"])
    data = open(location, "rb").read()
    with open(location, "wb") as handle:
        handle.write(data[:-10] + b"0123456789")
    with pytest.raises(IntegrityError, match="does not match its recorded sha256"):
        mlops.load_model("churn/1")
    import os

    os.remove(location)
    with pytest.raises(IntegrityError, match="missing"):
        mlops.load_model("churn/1")


def test_loading_refuses_types_not_declared_at_registration(cancer):
    X, y = cancer
    data, trusted, _ = serialize.dump(HistGradientBoostingClassifier(max_iter=3).fit(X, y))
    assert trusted  # this model needs one extra type
    with pytest.raises(IntegrityError, match="did not declare"):
        serialize.load(data, [])


def test_list_models_shows_versions_and_aliases(two_versions):
    mlops.promote("churn", 1, to="production")
    (model,) = mlops.list_models()
    assert (model["name"], model["latest_version"], model["aliases"]) == ("churn", 2, {"production": 1})
    assert [v["version"] for v in mlops.list_versions("churn")] == [2, 1]


def test_regressors_record_value_outputs(registry):
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    version = mlops.register_model(GradientBoostingRegressor(n_estimators=3).fit(X, y), "reg")
    assert version["signature"]["outputs"] == {"kind": "value"}
    assert json.dumps(version["signature"])  # JSON all the way down
    assert isinstance(mlops.load_model("reg/1").predict(pd.DataFrame(X).head(1))[0], float)
