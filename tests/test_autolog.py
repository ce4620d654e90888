"""Autolog of scikit-learn: what a fit, a score and a metric leave in the run, and that it all goes away."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import sklearn.metrics
from sklearn.base import ClassifierMixin
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import mlops_jupyter as mlops
from mlops_jupyter.tracking.autolog import AutologWarning, autolog

ORIGINAL_FIT = LogisticRegression.__dict__["fit"]
ORIGINAL_MIXIN_SCORE = ClassifierMixin.__dict__["score"]
ORIGINAL_PIPELINE_SCORE = Pipeline.__dict__["score"]  # a conditional (available_if) method


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :6]
    X = (X - X.mean()) / X.std()  # scaled, so the solver converges in a few iterations
    return X.iloc[:240], y.iloc[:240], X.iloc[240:320], y.iloc[240:320]


@pytest.fixture
def ns(cancer):
    X_train, y_train, X_test, y_test = cancer
    return {
        "X_train": X_train,
        "y_train": y_train,
        "X_test": X_test,
        "y_test": y_test,
        "roc_auc_score": roc_auc_score,
        "cross_val_score": cross_val_score,
    }


@pytest.fixture
def run(registry):
    with mlops.start_run("autolog") as run:
        yield run


def model():
    return LogisticRegression(C=0.5, max_iter=1000)


def assert_restored(ns=None):
    assert LogisticRegression.__dict__["fit"] is ORIGINAL_FIT
    assert ClassifierMixin.__dict__["score"] is ORIGINAL_MIXIN_SCORE
    assert Pipeline.__dict__["score"] is ORIGINAL_PIPELINE_SCORE
    assert sklearn.metrics.roc_auc_score is roc_auc_score
    assert sklearn.metrics.accuracy_score is accuracy_score
    if ns is not None:
        assert ns["roc_auc_score"] is roc_auc_score
        assert ns["cross_val_score"] is cross_val_score


def test_fit_logs_params_training_score_and_named_datasets(run, ns):
    with autolog(run, ns):
        fitted = model().fit(ns["X_train"], ns["y_train"])
    recorded = mlops.get_run(run.id)
    params, metrics = recorded["params"], recorded["metrics"]
    assert params["estimator"] == "LogisticRegression"
    assert params["C"] == "0.5" and params["max_iter"] == "1000" and params["class_weight"] == "None"
    assert metrics["training_score"] == pytest.approx(fitted.score(ns["X_train"], ns["y_train"]))
    assert [(d["name"], d["context"], d["rows"]) for d in recorded["datasets"]] == [
        ("X_train", "training", 240),
        ("y_train", "training", 240),
    ]
    assert recorded["tags"]["autolog"] == "sklearn"
    assert_restored(ns)


def test_unnamed_arrays_are_logged_as_X_and_y_once_per_object(run, ns):
    X = ns["X_train"].to_numpy()
    y = ns["y_train"].to_numpy()
    with autolog(run, {}):
        estimator = model()
        estimator.fit(X, y)
        estimator.fit(X, y)  # the same objects again: not fingerprinted twice
        estimator.fit(X.tolist(), list(y))  # lists are not fingerprinted
    recorded = mlops.get_run(run.id)
    assert [(d["name"], d["schema"]["kind"]) for d in recorded["datasets"]] == [("X", "ndarray"), ("y", "ndarray")]
    assert len(mlops.get_metric_history(run.id, "training_score")) == 3


def test_pipeline_is_logged_not_its_steps(run, ns):
    with autolog(run, ns):
        make_pipeline(StandardScaler(), model()).fit(ns["X_train"], ns["y_train"])
    recorded = mlops.get_run(run.id)
    params = recorded["params"]
    assert params["estimator"] == "Pipeline"
    assert params["steps"] == "standardscaler=StandardScaler, logisticregression=LogisticRegression"
    assert not any(key == "C" or key.startswith(("LogisticRegression.", "StandardScaler.")) for key in params)
    assert set(recorded["metrics"]) == {"training_score"}
    assert len(recorded["datasets"]) == 2


def test_second_estimator_is_prefixed_and_transformers_never_take_plain_keys(run, ns):
    X, y = ns["X_train"], ns["y_train"]
    with autolog(run, ns):
        StandardScaler().fit(X)
        model().fit(X, y)
        RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    recorded = mlops.get_run(run.id)
    params, metrics = recorded["params"], recorded["metrics"]
    assert params["estimator"] == "LogisticRegression" and params["C"] == "0.5"
    assert params["StandardScaler.estimator"] == "StandardScaler"
    assert params["StandardScaler.with_mean"] == "True"
    assert params["RandomForestClassifier.estimator"] == "RandomForestClassifier"
    assert params["RandomForestClassifier.n_estimators"] == "5"
    assert set(metrics) == {"training_score", "RandomForestClassifier.training_score"}
    assert "StandardScaler.training_score" not in metrics  # no y, no score
    # X and y are the same objects for all three fits: logged once.
    assert [d["name"] for d in recorded["datasets"]] == ["X_train", "y_train"]


def test_refit_with_same_params_is_quiet(run, ns):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with autolog(run, ns):
            model().fit(ns["X_train"], ns["y_train"])
            model().fit(ns["X_train"], ns["y_train"])  # a re-run cell: a new object, same class and params
    assert mlops.get_run(run.id)["params"]["C"] == "0.5"
    assert len(mlops.get_metric_history(run.id, "training_score")) == 2


def test_refit_with_other_params_warns_and_does_not_break_the_cell(run, ns):
    with autolog(run, ns):
        model().fit(ns["X_train"], ns["y_train"])
    with autolog(run, ns), pytest.warns(AutologWarning, match="C '0.5' -> '2.0'"):
        fitted = LogisticRegression(C=2.0, max_iter=1000).fit(ns["X_train"], ns["y_train"])
    assert hasattr(fitted, "coef_")
    assert mlops.get_run(run.id)["params"]["C"] == "0.5"  # params are fixed once logged
    assert len(mlops.get_metric_history(run.id, "training_score")) == 2


def test_a_param_the_user_logged_by_hand_is_kept_and_the_others_are_logged(run, ns):
    mlops.log_param("max_iter", "5", run=run)
    with autolog(run, ns), pytest.warns(AutologWarning, match="max_iter"):
        model().fit(ns["X_train"], ns["y_train"])
    params = mlops.get_run(run.id)["params"]
    assert params["max_iter"] == "5"
    assert params["C"] == "0.5" and params["estimator"] == "LogisticRegression"


def test_a_registry_failure_warns_once_and_the_user_code_runs(registry, ns):
    with pytest.warns(AutologWarning) as caught, autolog("no-such-run", ns):
        fitted = model().fit(ns["X_train"], ns["y_train"])
        fitted.score(ns["X_test"], ns["y_test"])
        ns["roc_auc_score"](ns["y_test"], fitted.predict_proba(ns["X_test"])[:, 1])
    assert len([w for w in caught if w.category is AutologWarning]) == 1
    assert caught[0].filename == __file__  # points at the user's line, not at autolog or sklearn
    assert_restored(ns)


def test_held_out_scores_and_metric_functions(run, ns):
    X_train, y_train, X_test, y_test = (ns[k] for k in ("X_train", "y_train", "X_test", "y_test"))
    with autolog(run, ns):
        fitted = model().fit(X_train, y_train)
        score = fitted.score(X_test, y_test)
        auc = ns["roc_auc_score"](y_test, fitted.predict_proba(X_test)[:, 1])  # imported by name
        accuracy = sklearn.metrics.accuracy_score(y_test, fitted.predict(X_test))  # through the module
        per_class = sklearn.metrics.f1_score(y_test, fitted.predict(X_test), average=None)  # an array: skipped
    metrics = mlops.get_run(run.id)["metrics"]
    assert metrics["score"] == pytest.approx(score)
    assert metrics["roc_auc"] == pytest.approx(auc)
    assert metrics["accuracy"] == pytest.approx(accuracy)
    assert per_class.shape == (2,) and "f1" not in metrics
    assert_restored(ns)


def test_regressor_metrics(run):
    X, y = load_diabetes(return_X_y=True)
    X_train, y_train, X_test, y_test = X[:300], y[:300], X[300:], y[300:]
    namespace = {"X_train": X_train, "y_train": y_train, "mean_squared_error": mean_squared_error}
    with autolog(run, namespace):
        ridge = Ridge(alpha=0.3).fit(X_train, y_train)
        mse = namespace["mean_squared_error"](y_test, ridge.predict(X_test))
        ridge.score(X_test, y_test)
    recorded = mlops.get_run(run.id)
    assert recorded["params"]["alpha"] == "0.3"
    assert recorded["metrics"]["mean_squared_error"] == pytest.approx(mse)
    assert set(recorded["metrics"]) == {"training_score", "score", "mean_squared_error"}
    assert [d["name"] for d in recorded["datasets"]] == ["X_train", "y_train"]
    assert namespace["mean_squared_error"] is mean_squared_error


def test_grid_search_logs_best_params_cv_score_and_results_not_inner_fits(run, ns):
    with autolog(run, ns):
        search = GridSearchCV(LogisticRegression(max_iter=1000), {"C": [0.1, 1.0]}, cv=3)
        search.fit(ns["X_train"], ns["y_train"])
    recorded = mlops.get_run(run.id)
    params, metrics = recorded["params"], recorded["metrics"]
    assert params["estimator"] == "GridSearchCV"
    assert params["inner_estimator"] == "LogisticRegression"
    assert params["best.C"] == str(search.best_params_["C"])
    assert metrics["best_cv_score"] == pytest.approx(search.best_score_)
    assert [a["path"] for a in recorded["artifacts"]] == ["cv_results.csv"]
    # The 6 fold fits and the refit are not the user's top-level fits.
    assert "C" not in params and not any(key.startswith("LogisticRegression.") for key in params)
    assert len(mlops.get_metric_history(run.id, "training_score")) == 1
    assert len(recorded["datasets"]) == 2

    mlops.download_artifact(run, "cv_results.csv", "out")
    with open("out/cv_results.csv") as handle:
        header, *rows = handle.read().splitlines()
    assert "mean_test_score" in header and len(rows) == 2


def test_cross_val_score_fits_are_not_logged(run, ns):
    with autolog(run, ns):
        scores = ns["cross_val_score"](model(), ns["X_train"], ns["y_train"], cv=3)
    assert len(scores) == 3
    recorded = mlops.get_run(run.id)
    assert recorded["params"] == {} and recorded["datasets"] == [] and "autolog" not in recorded["tags"]
    assert_restored(ns)


def test_everything_is_restored_even_when_the_block_raises(run, ns):
    with pytest.raises(KeyError, match="oops"), autolog(run, ns):
        assert LogisticRegression.__dict__["fit"] is not ORIGINAL_FIT
        assert LogisticRegression.fit.__wrapped__ is ORIGINAL_FIT
        assert ns["roc_auc_score"] is not roc_auc_score
        assert sklearn.metrics.roc_auc_score is ns["roc_auc_score"]
        raise KeyError("oops")
    assert_restored(ns)


def test_a_name_imported_inside_the_block_is_given_back_the_original(run, ns):
    with autolog(run, ns):
        ns["accuracy_score"] = sklearn.metrics.accuracy_score  # what `from sklearn.metrics import …` does
        ns["my_auc"] = ns["roc_auc_score"]
    assert ns["accuracy_score"] is accuracy_score and ns["my_auc"] is roc_auc_score
    # A name the user rebound inside the block is left alone.
    with autolog(run, ns):
        ns["roc_auc_score"] = len
    assert ns["roc_auc_score"] is len


def test_an_exception_from_inside_fit_propagates_unchanged(run, ns):
    class Boom(Exception):
        pass

    raised = Boom("the user's own code failed")

    def explode(X):
        raise raised

    pipeline = make_pipeline(FunctionTransformer(explode), model())
    with pytest.raises(Boom) as caught, autolog(run, ns):
        pipeline.fit(ns["X_train"], ns["y_train"])
    assert caught.value is raised
    recorded = mlops.get_run(run.id)
    assert recorded["params"] == {} and recorded["datasets"] == []
    assert_restored(ns)


def test_nested_autolog_does_not_double_log(run, ns):
    with autolog(run, ns), autolog(run, ns):
        model().fit(ns["X_train"], ns["y_train"])
        assert LogisticRegression.fit.__wrapped__ is ORIGINAL_FIT  # wrapped once, not twice
    assert len(mlops.get_metric_history(run.id, "training_score")) == 1
    assert len(mlops.get_run(run.id)["datasets"]) == 2
    assert_restored(ns)


def test_without_a_run_it_logs_into_the_active_run(run, ns):
    with autolog(None, ns):
        model().fit(ns["X_train"], ns["y_train"])
    assert mlops.get_run(run.id)["params"]["estimator"] == "LogisticRegression"


def test_nothing_is_logged_outside_the_block(run, ns):
    with autolog(run, ns):
        pass
    model().fit(ns["X_train"], ns["y_train"]).score(ns["X_test"], ns["y_test"])
    roc_auc_score(ns["y_test"], np.linspace(0, 1, len(ns["y_test"])))
    recorded = mlops.get_run(run.id)
    assert recorded["params"] == {} and recorded["metrics"] == {} and recorded["datasets"] == []


def test_without_sklearn_imported_autolog_is_a_no_op(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from mlops_jupyter import api
        from mlops_jupyter.tracking.autolog import autolog

        namespace = {"x": 1}
        with autolog("not-even-a-run", namespace):
            namespace["y"] = 2
        assert namespace == {"x": 1, "y": 2}
        assert "sklearn" not in sys.modules and "pandas" not in sys.modules, sorted(sys.modules)
        assert api._registry is None  # not even the registry was opened
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "MLOPS_USER": "tester"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
