"""The end-to-end tour: train a few models, track them, register the best, promote it, load it back.

Uses scikit-learn's bundled breast-cancer data, so it needs no download.
"""

import time

MODEL_NAME = "breast-cancer"


def run_demo(registry=None, say=print):
    import mlops_jupyter as mlops
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    opened = mlops.connect(registry)
    say(f"registry   {opened.url}")
    say(f"artifacts  {opened.artifacts.root}")
    mlops.set_experiment("demo")

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    candidates = {
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000)),
        "forest": RandomForestClassifier(n_estimators=100, max_depth=5, random_state=0),
        "boosting": GradientBoostingClassifier(n_estimators=50, random_state=0),
    }
    say("\n1. Train and track three models")
    results = []
    for name, model in candidates.items():
        with mlops.start_run(name, tags={"demo": "true"}) as run:
            mlops.log_params({"model": name, **_simple_params(model)})
            mlops.log_dataset(X_train, "train")
            mlops.log_dataset(X_test, "test", context="evaluation")
            model.fit(X_train, y_train)
            scores = model.predict_proba(X_test)[:, 1]
            auc = roc_auc_score(y_test, scores)
            mlops.log_metrics({"auc": auc, "accuracy": accuracy_score(y_test, model.predict(X_test))})
        results.append((auc, name, run, model))
        say(f"   run {run.id[:8]}  {name:<9} auc={auc:.4f}")

    auc, name, run, model = max(results, key=lambda result: result[0])
    say(f"\n2. Register the best ({name}, auc={auc:.4f}) as model {MODEL_NAME!r}")
    try:
        version = mlops.register_model(
            model, MODEL_NAME, run=run, input_example=X_test.head(), primary_metric="auc"
        )["version"]
        say(f"   version {version}, saved with skops, signature of {X.shape[1]} input columns")
    except mlops.AlreadyExists as exists:
        version = exists.version
        say(f"   this exact model is already version {version}; using it")

    say("\n3. Promote it to staging, then production (gated by its auc)")
    for alias in ("staging", "production"):
        moved = mlops.promote(MODEL_NAME, version, to=alias, reason="demo")
        verdict = "; ".join(v["message"] for v in moved["verdicts"]) or "already there"
        say(f"   {alias:<10} v{moved['from_version'] or '-'} -> v{version}  ({verdict})")

    say(f"\n4. Load {MODEL_NAME}@production back (hash-checked) and score the held-out set")
    loaded = mlops.load_model(f"{MODEL_NAME}@production")
    reloaded_auc = roc_auc_score(y_test, loaded.predict_proba(X_test)[:, 1])
    say(f"   auc={reloaded_auc:.4f} ({'same as' if abs(reloaded_auc - auc) < 1e-12 else 'DIFFERENT from'} the run's)")

    best = mlops.search_runs("tags.demo = 'true'", experiment="demo", order_by="metrics.auc desc", limit=3)
    say("\n5. Best runs in the registry:  mlops runs --experiment demo --sort 'metrics.auc desc'")
    for _, row in best.iterrows():
        say(f"   {row['run_id'][:8]}  {row['name']:<9} auc={row['metrics.auc']:.4f}  {row['status']}")
    say(f"\nDone in {time.perf_counter() - started:.1f} s. Next: `mlops models`, `mlops history {MODEL_NAME}`.")
    return {"version": version, "auc": auc, "reloaded_auc": reloaded_auc, "runs": [r[2].id for r in results]}


def _simple_params(model):
    """The final estimator's own settings that are plain values (nested estimators left out)."""
    model = model[-1] if hasattr(model, "steps") else model
    return {
        key: value
        for key, value in model.get_params(deep=False).items()
        if isinstance(value, (int, float, str, bool)) or value is None
    }
