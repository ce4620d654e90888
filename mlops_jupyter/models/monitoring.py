"""How a served model does: drift of its served inputs against its training set, its predictions
over time, its performance where labels came back, and a verdict with the reasons.

The reference for a feature is the registered values of the feature version its training set
joined: a training set keeps its fingerprint, not its rows, and those values are the population
its rows were drawn from. PSI is exact (the served values counted on the version's stored
histogram bins, ``statistics.histogram_on``) and KS compares the raw values; both come from
``features.statistics``. Model inputs that are not registered features have no reference and
are listed as such.
"""

import math

DEFAULT_THRESHOLDS = {
    "psi": 0.2,  # drift when PSI is above this…
    "ks_pvalue": 0.01,  # …or the KS test's p-value is below this
    "performance_drop": 0.1,  # unhealthy when the served metric is this much (relative) worse than at training
    "min_rows": 30,  # fewer served rows (or labels) than this: no verdict from them
}
# Names a served metric may have among a version's training metrics, in order of preference.
_TRAINING_NAMES = {"accuracy": ("accuracy", "test_accuracy", "val_accuracy"),
                   "mae": ("mae", "mean_absolute_error", "test_mae"),
                   "rmse": ("rmse", "root_mean_squared_error", "test_rmse")}
_HIGHER_IS_BETTER = {"accuracy": True, "mae": False, "rmse": False}


def check_thresholds(overrides):
    from ..errors import InvalidInput

    limits = dict(DEFAULT_THRESHOLDS)
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_THRESHOLDS:
            raise InvalidInput(f"unknown threshold {key!r}; the thresholds are {', '.join(DEFAULT_THRESHOLDS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise InvalidInput(f"threshold {key!r} must be a non-negative number, not {value!r}")
        limits[key] = value
    return limits


def served_rows(requests):
    """One row per served record: ``request_id``, ``row``, ``at`` (UTC), ``prediction`` and the inputs."""
    import pandas

    records, meta = [], []
    for request in requests:
        for row, (inputs, prediction) in enumerate(zip(request["inputs"], request["outputs"])):
            records.append(inputs if isinstance(inputs, dict) else dict(enumerate(inputs)))
            meta.append((request["id"], row, request["at"], prediction))
    frame = pandas.DataFrame.from_records(records) if records else pandas.DataFrame()
    info = pandas.DataFrame(meta, columns=["request_id", "row", "at", "prediction"])
    info["at"] = pandas.to_datetime(info["at"], unit="s", utc=True)
    return pandas.concat([info, frame.add_prefix("input.")], axis=1)


def feature_drift(served, references, limits):
    """Per input column: PSI and KS of the served values against the reference feature version.

    ``references``: ``{column: {"name", "version", "statistics", "values"}}`` (a Series), or
    None for a column without one.
    """
    import pandas

    from ..features import statistics

    rows = []
    for column, reference in references.items():
        values = served.get(f"input.{column}", pandas.Series(dtype="float64"))
        entry = {"feature": column, "version": None, "served": int(values.notna().sum()), "psi": None,
                 "psi_band": None, "ks_statistic": None, "ks_pvalue": None, "drifted": False,
                 "summary": "no reference: not a registered feature of the training set"}
        if reference is not None:
            values = _like(values, reference["values"])
            old = reference["statistics"]
            edges = (old.get("histogram") or {}).get("edges")
            counts = statistics.histogram_on(values, edges) if edges and values.notna().any() else None
            compared = statistics.compare(old, statistics.describe(values), new_counts_on_old_edges=counts)
            entry.update(version=reference["version"], psi=compared["psi"], psi_band=compared["psi_band"],
                         summary=compared["summary"])
            if old["kind"] in ("numeric", "datetime") and values.notna().any():
                entry["ks_statistic"], entry["ks_pvalue"] = statistics.ks_statistic(reference["values"], values)
            if entry["served"] >= limits["min_rows"]:
                entry["drifted"] = bool((entry["psi"] is not None and entry["psi"] > limits["psi"])
                                        or (entry["ks_pvalue"] is not None and entry["ks_pvalue"] < limits["ks_pvalue"]))
        rows.append(entry)
    return pandas.DataFrame(rows, columns=["feature", "version", "served", "psi", "psi_band", "ks_statistic",
                                           "ks_pvalue", "drifted", "summary"])


def _like(values, reference):
    """Served JSON values in the reference's dtype (datetimes arrive as text)."""
    import pandas

    if pandas.api.types.is_datetime64_any_dtype(reference.dtype):
        return pandas.to_datetime(values, utc=getattr(reference.dtype, "tz", None) is not None, errors="coerce")
    if pandas.api.types.is_numeric_dtype(reference.dtype) and not pandas.api.types.is_bool_dtype(reference.dtype):
        return pandas.to_numeric(values, errors="coerce")
    return values


def bucket_size(served, bucket):
    """The pandas frequency for ``bucket``: "hour", "day", or "auto" (hours within two days, else days)."""
    if bucket == "auto":
        span = served["at"].max() - served["at"].min() if len(served) else None
        bucket = "hour" if span is None or span.total_seconds() <= 2 * 86400 else "day"
    return {"hour": "h", "day": "D"}[bucket]


def prediction_distribution(served, frequency, classes):
    """Predictions per time bucket: a count per class for a classifier (``classes`` given), else
    count, mean and the 5th, 50th and 95th percentiles of the predicted values."""
    import pandas

    buckets = served["at"].dt.floor(frequency).rename("bucket")
    if classes is not None:
        counts = served.groupby([buckets, served["prediction"].astype(str).rename("prediction")]).size()
        return counts.rename("count").reset_index()
    values = pandas.to_numeric(served["prediction"], errors="coerce").groupby(buckets)
    summary = values.agg(["count", "mean"])
    for q in (0.05, 0.5, 0.95):
        summary[f"p{int(q * 100):02d}"] = values.quantile(q)
    return summary.reset_index()


def performance(served, labels, frequency, classes, training_metrics, limits):
    """The served metric overall and per bucket where labels exist, against the training metric.

    Accuracy for a classifier (served predictions are classes, so no AUC), MAE and RMSE for a
    regressor. Returns ``(summary dict or None, per-bucket DataFrame)``.
    """
    import numpy
    import pandas

    keys = list(zip(served["request_id"], served["row"]))
    found = [labels.get(key) for key in keys]
    labelled = served.assign(label=found)[[value is not None for value in found]]
    if labelled.empty:
        return None, pandas.DataFrame(columns=["bucket", "labels", "value"])
    buckets = labelled["at"].dt.floor(frequency).rename("bucket")
    if classes is not None:
        metric = "accuracy"
        hits = labelled["prediction"].astype(str) == labelled["label"].astype(str)
        per_bucket = hits.groupby(buckets).agg(["count", "mean"])
        value = float(hits.mean())
    else:
        metric = "mae"
        errors = pandas.to_numeric(labelled["prediction"]) - pandas.to_numeric(labelled["label"])
        per_bucket = errors.abs().groupby(buckets).agg(["count", "mean"])
        value = float(errors.abs().mean())
    summary = {"metric": metric, "value": value, "labels": len(labelled)}
    if classes is None:
        summary["rmse"] = float(numpy.sqrt((errors ** 2).mean()))
    training_name = next((name for name in _TRAINING_NAMES[metric] if name in training_metrics), None)
    summary["training_metric"] = training_name
    summary["training_value"] = training_metrics.get(training_name) if training_name else None
    summary["worse_by"] = _relative_worsening(metric, value, summary["training_value"])
    summary["degraded"] = bool(len(labelled) >= limits["min_rows"] and summary["worse_by"] is not None
                               and summary["worse_by"] > limits["performance_drop"])
    return summary, per_bucket.rename(columns={"count": "labels", "mean": "value"}).reset_index()


def _relative_worsening(metric, served, trained):
    if trained is None or not math.isfinite(trained) or trained == 0:
        return None
    change = (trained - served) if _HIGHER_IS_BETTER[metric] else (served - trained)
    return change / abs(trained)


def reasons(drift, summary):
    """Why a model is unhealthy, one short line each; empty when it is healthy."""
    found = []
    for row in drift[drift["drifted"]].itertuples():
        measures = [f"PSI {row.psi:.2f}" if _present(row.psi) else None,
                    f"KS p {row.ks_pvalue:.1e}" if _present(row.ks_pvalue) else None]
        found.append(f"{row.feature} drifted ({', '.join(m for m in measures if m)})")
    if summary is not None and summary["degraded"]:
        found.append(f"{summary['metric']} {summary['value']:.3g} is {summary['worse_by']:.0%} worse than at training "
                     f"({summary['training_metric']} {summary['training_value']:.3g})")
    return found


def _present(value):
    return value is not None and not (isinstance(value, float) and math.isnan(value))
