"""Figure 5: register, promote (staging, then production) and load by alias a small model.

The model: scikit-learn's LogisticRegression fitted on its bundled breast cancer data. Each
cycle uses a model fitted with a slightly different C (fitting is not timed), so no cycle
reuses stored bytes. Ours: ``register_model`` → ``promote`` to staging → ``promote`` to
production (gates run) → ``load_model("name@production")``. MLflow: ``mlflow.sklearn.log_model``
(inside a run started outside the timing) → ``mlflow.register_model`` → two
``set_registered_model_alias`` → ``mlflow.sklearn.load_model("models:/name@production")``.
The first cycle of each process is reported apart (lazy imports, first statements); the
median of the others, alternating between the sides, is the figure.
"""

import time

import _peer

WARM_CYCLES = 6
TARGET_S = 0.2


def fitted_models(count):
    import warnings

    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    features, labels = load_breast_cancer(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs on unscaled features: convergence warnings, harmless here
        models = [LogisticRegression(C=1.0 + index / 100, max_iter=5000).fit(features, labels) for index in range(count)]
    return models, features[:20]


def check_same(model, loaded, sample):
    if (model.predict_proba(sample) != loaded.predict_proba(sample)).any():
        raise AssertionError("the loaded model predicts differently")


class Ours:
    def setup(self, url, artifacts, count):
        import mlops_jupyter as mlops

        self.mlops = mlops
        mlops.connect(url, artifacts=artifacts)
        self.models, self.sample = fitted_models(count)

    def cycle(self, index):
        mlops, model, name = self.mlops, self.models[index], f"classifier-{index}"
        clock = time.perf_counter
        started = clock()
        version = mlops.register_model(model, name)["version"]
        registered = clock()
        mlops.promote(name, version, "staging")
        mlops.promote(name, version, "production")
        promoted = clock()
        loaded = mlops.load_model(f"{name}@production")
        done = clock()
        check_same(model, loaded, self.sample)
        return {"log_or_register": registered - started, "register": 0.0, "promote": promoted - registered,
                "load": done - promoted, "total": done - started}


class Peer:
    def setup(self, url, artifacts, count):
        import mlflow.sklearn  # noqa: F401 - a notebook imports it before using it

        self.mlflow, self.experiment = _peer.open_mlflow(url, artifacts, "models-bench")
        self.client = self.mlflow.tracking.MlflowClient()
        self.models, self.sample = fitted_models(count)

    def cycle(self, index):
        mlflow, model, name = self.mlflow, self.models[index], f"classifier-{index}"
        clock = time.perf_counter
        with mlflow.start_run(experiment_id=self.experiment):
            started = clock()
            info = mlflow.sklearn.log_model(model, name="model")
            logged = clock()
        version = mlflow.register_model(info.model_uri, name).version
        registered = clock()
        self.client.set_registered_model_alias(name, "staging", version)
        self.client.set_registered_model_alias(name, "production", version)
        promoted = clock()
        loaded = mlflow.sklearn.load_model(f"models:/{name}@production")
        done = clock()
        check_same(model, loaded, self.sample)
        return {"log_or_register": logged - started, "register": registered - logged, "promote": promoted - registered,
                "load": done - promoted, "total": done - started}


def main():
    args = _peer.parse_args(__doc__.splitlines()[0])
    warm = 2 if args.quick else WARM_CYCLES
    cycles = {"ours": [], "mlflow": []}
    with _peer.scratch_dir() as scratch, _peer.sides(__file__, peer=not args.no_peer, scratch=scratch) as (ours, peer):
        ours.call("setup", url=_peer.sqlite_url(scratch / "ours.db"), artifacts=str(scratch / "ours-artifacts"),
                  count=warm + 1)
        if peer:
            peer.call("setup", url=_peer.sqlite_url(scratch / "mlflow.db"), artifacts=str(scratch / "mlflow-artifacts"),
                      count=warm + 1)
        for index in range(warm + 1):
            pair = [("ours", ours)] + ([("mlflow", peer)] if peer else [])
            for side, worker in pair if index % 2 == 0 else reversed(pair):
                cycles[side].append(worker.call("cycle", index=index))
            print(f"[models] cycle {index + 1}/{warm + 1}: ours {cycles['ours'][-1]['total']:.3f} s"
                  + (f", MLflow {cycles['mlflow'][-1]['total']:.2f} s" if peer else ""), flush=True)

    def first(side, part):
        return cycles[side][0][part] * 1000 if cycles[side] else None

    def typical(side, part):
        return _peer.median([c[part] for c in cycles[side][1:]]) * 1000 if cycles[side] else None

    rows = [
        _peer.row("register + promote ×2 + load by alias, total (median of warm cycles)", typical("ours", "total"),
                  typical("mlflow", "total"), target=f"≤ {TARGET_S:g} s", limit=TARGET_S * 1000),
        _peer.row("same, first cycle in a fresh process", first("ours", "total"), first("mlflow", "total"),
                  target=f"≤ {TARGET_S:g} s", limit=TARGET_S * 1000),
        _peer.row("register (ours) vs log_model + register_model (MLflow)", typical("ours", "log_or_register"),
                  typical("mlflow", "log_or_register") + typical("mlflow", "register") if peer else None),
        _peer.row("  of which MLflow's register_model alone", None, typical("mlflow", "register"), note="MLflow only"),
        _peer.row("promote to staging and to production (ours, with gates) vs two set_registered_model_alias",
                  typical("ours", "promote"), typical("mlflow", "promote")),
        _peer.row("load by alias", typical("ours", "load"), typical("mlflow", "load")),
    ]
    notes = [
        f"{warm} warm cycles per side, alternating, after one first cycle each; every loaded model's predictions are "
        "checked against the original's.",
        "Ours stores the model with skops (no pickle) and records its signature and trusted types; MLflow's "
        "log_model writes an MLmodel, conda/pip requirement files (inferring requirements) and a pickle.",
        "MLflow's first cycle excludes `import mlflow.sklearn` (done at setup, as a notebook would); ours includes "
        "importing skops, which `register_model` does on first use.",
    ]
    _peer.finish(args, 5, "Register, promote and load a model", rows, notes)


if __name__ == "__main__":
    main()
