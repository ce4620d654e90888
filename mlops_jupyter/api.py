"""The one door to the registry: every edge (magics, widgets, CLI, REST, pipelines) calls these.

Functions work on the current registry (``connect``) and the active run (``start_run``),
or on an explicit ``run=``. Heavy libraries are imported inside the functions that need them.
"""

import atexit
import functools
import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import config
from .errors import InvalidInput, NoActiveRun, NotFound
from .models.reference import check_model_name
from .validation import check_key, check_metric_value, check_name, check_relative_path, check_step

DEFAULT_EXPERIMENT = "default"

_lock = threading.RLock()
_registry = None
_experiment = DEFAULT_EXPERIMENT
_active_runs = []  # a stack: the last one is where logging goes
_next_step = {}  # (run_id, key) -> the step a log without step= gets
_known_keys = set()  # keys already validated, so the hot logging path skips re-checking them
_atexit_registered = False


class Registry:
    """An open registry: its database (the Store) and its artifact store."""

    def __init__(self, url, artifacts=None):
        from .registry.artifacts import ArtifactStore
        from .registry.store import Store

        self.url = config.resolve_registry_url(url)
        self.store = Store(self.url)
        if artifacts is not None:
            root = config.check_artifact_url(artifacts)
        elif config.sqlite_path(self.url) is not None:
            root = config.default_artifact_root(self.url)
        else:
            root = self.store.get_info("artifact_root") or config.default_artifact_root(self.url)
        if config.sqlite_path(self.url) is None:
            # A shared database remembers where its first user put artifacts, so colleagues find them.
            recorded = self.store.set_info_if_missing("artifact_root", root)
            root = root if artifacts is not None else recorded
        self.artifacts = ArtifactStore(root)

    def __repr__(self):
        return f"<mlops registry {config.redact(self.url)} artifacts={self.artifacts.root}>"

    def close(self):
        self.store.close()


def connect(url=None, *, artifacts=None):
    """Open the registry at ``url`` (``sqlite:///PATH`` or ``postgresql://…``) and make it current.

    Without a URL: ``MLOPS_REGISTRY_URL``, else the nearest ``.mlops/registry.db`` above the
    working directory, else a new one here. The schema is created or upgraded as needed.
    """
    global _registry
    if _active_runs:
        raise InvalidInput(
            f"run {_active_runs[-1].name} is still active in the current registry; "
            "end it (mlops.end_run() or %mlops run end) before connecting to another"
        )
    registry = Registry(url, artifacts)
    with _lock:
        if _registry is not None:
            _registry.close()
        _registry = registry
        _feature_callables.clear()  # callable expectations belong to the features of the old registry
    mark_crashed_runs()
    return registry


def current_registry():
    global _registry
    with _lock:
        if _registry is None:
            _registry = Registry(None)
        return _registry


def _store():
    return current_registry().store


def set_experiment(name):
    """Make ``name`` the experiment new runs go into (created on first use)."""
    global _experiment
    _experiment = check_name(name, "experiment name")
    _store().get_or_create_experiment(_experiment, config.current_user())
    return _experiment


def active_experiment():
    return _experiment


# ---- runs -------------------------------------------------------------------------------


@dataclass(eq=False)
class Run:
    """A run in the registry; use it as a context manager to end it, failed if the block raises."""

    id: str
    name: str
    experiment: str

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        end_run(status, run=self)
        return False

    def end(self, status="FINISHED"):
        end_run(status, run=self)


def start_run(name=None, *, experiment=None, tags=None, parent=None, code=None, source_path=None):
    """Start a run and make it active. Started inside another active run, it becomes its child.

    ``code`` is the source to record (the magics pass the cell); by default a script's own file.
    """
    from .tracking import capture

    experiment = check_name(experiment, "experiment name") if experiment is not None else _experiment
    if name is not None:
        check_name(name, "run name")
    clean_tags = _string_map(tags or {}, "tag")
    user = config.current_user()
    store = _store()
    experiment_id = store.get_or_create_experiment(experiment, user)
    parent_id = _run_id(parent) if parent is not None else (_active_runs[-1].id if _active_runs else None)
    provenance, code = capture.capture(code, source_path)
    provenance["packages"] = json.dumps(provenance["packages"])
    run_id = store.create_run(
        experiment_id, name, user, parent_run_id=parent_id, capture=provenance, owner=capture.owner(), code=code
    )
    run = Run(run_id, name or run_id[:8], experiment)
    if clean_tags:
        store.set_tags(run_id, clean_tags, user)
    with _lock:
        _active_runs.append(run)
        _register_atexit()
    return run


def end_run(status="FINISHED", *, run=None):
    """End the active run (or ``run``) and any runs started inside it, with ``status``."""
    target = _run_id(run) if run is not None else _require_active().id
    store = _store()
    with _lock:
        ids = [r.id for r in _active_runs]
        inner = ids[ids.index(target):] if target in ids else [target]
        for run_id in reversed(inner):
            store.end_run(run_id, status, config.current_user())
        _active_runs[:] = [r for r in _active_runs if r.id not in inner]


def active_run():
    """The run logging goes to, or None."""
    return _active_runs[-1] if _active_runs else None


def _require_active():
    if not _active_runs:
        raise NoActiveRun("no active run: start one with mlops.start_run() (or %%mlops run), or pass run=")
    return _active_runs[-1]


def _run_id(run):
    if isinstance(run, Run):
        return run.id
    if isinstance(run, str):
        return _store().resolve_run_id(run)
    raise InvalidInput(f"run must be a Run or a run id, not {type(run).__name__}")


def _target(run):
    return _run_id(run) if run is not None else _require_active().id


def _register_atexit():
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_finish_open_runs)
        _atexit_registered = True


def _finish_open_runs():
    # The interpreter is exiting normally: runs left open finished with it.
    if _active_runs:
        end_run("FINISHED", run=_active_runs[0])


def mark_crashed_runs():
    """Mark RUNNING runs of this machine whose process is gone as CRASHED; return their ids."""
    from .tracking.capture import is_alive

    store = _store()
    dead = [
        run_id
        for run_id, pid, started in store.running_runs_on(socket.gethostname())
        if pid is not None and not is_alive(pid, started)
    ]
    if dead:
        store.mark_crashed(dead, config.current_user())
    return dead


# ---- logging ----------------------------------------------------------------------------


def _key(key, what):
    if key not in _known_keys:
        check_key(key, what)
        _known_keys.add(key)
    return key


def log_metric(key, value, step=None, *, run=None, timestamp=None):
    """Record one metric point: one INSERT and one commit, durable when this returns."""
    log_metrics({key: value}, step, run=run, timestamp=timestamp)


def log_metrics(values, step=None, *, run=None, timestamp=None):
    """Record several metrics at one step. Without ``step``, each key counts up from 0."""
    run_id = _target(run)
    now = time.time() if timestamp is None else float(timestamp)
    if step is not None:
        step = check_step(step)
    points = []
    for key, value in values.items():
        _key(key, "metric name")
        value = check_metric_value(key, value)
        point_step = step if step is not None else _next_step.get((run_id, key), 0)
        points.append((key, value, point_step, now))
    _store().log_metrics(run_id, points)
    for key, _, point_step, _ in points:
        _next_step[(run_id, key)] = point_step + 1


def log_param(key, value, *, run=None):
    log_params({key: value}, run=run)


def log_params(values, *, run=None):
    """Record params; a param cannot change once logged in a run."""
    _store().log_params(_target(run), _string_map(values, "param"), config.current_user())


def set_tag(key, value, *, run=None):
    set_tags({key: value}, run=run)


def set_tags(values, *, run=None):
    _store().set_tags(_target(run), _string_map(values, "tag"), config.current_user())


def _string_map(values, what):
    if not isinstance(values, dict):
        raise InvalidInput(f"{what}s must be a dict of name to value, not {type(values).__name__}")
    return {_key(key, f"{what} name"): _as_text(value) for key, value in values.items()}


def _as_text(value):
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def log_dataset(data, name=None, *, context="training", run=None):
    """Record a DataFrame's or array's fingerprint (shape, columns, dtypes, content hash)."""
    from .tracking.fingerprint import fingerprint

    run_id = _target(run)
    name = check_name(name, "dataset name") if name is not None else "dataset"
    check_name(context, "dataset context")
    digest, rows, schema = fingerprint(data)
    _store().log_dataset(run_id, name, context, digest, rows, schema, config.current_user())
    return digest


def log_artifact(local_path, artifact_path=None, *, run=None):
    """Store a file (or a folder's files) content-addressed; return the recorded paths."""
    run_id = _target(run)
    source = Path(local_path)
    if not source.exists():
        raise NotFound(f"no file or folder at {str(source)!r}")
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file())
        base = check_relative_path(artifact_path) if artifact_path else check_relative_path(source.resolve().name)
        pairs = [(f, f"{base}/{f.relative_to(source).as_posix()}") for f in files]
    else:
        pairs = [(source, check_relative_path(artifact_path or source.name))]
    for _, path in pairs:
        check_relative_path(path)
    registry = current_registry()
    recorded = []
    for file, path in pairs:
        sha256, size = registry.artifacts.put_file(file)
        registry.store.record_artifact(run_id, path, sha256, size, config.current_user())
        recorded.append(path)
    return recorded


def download_artifact(run, path, destination="."):
    """Copy a run's artifact, verified against its sha256, into the folder ``destination``."""
    registry = current_registry()
    run_id = _run_id(run)
    entry = registry.store.get_artifact(run_id, check_relative_path(path))
    return registry.artifacts.copy_to(entry["sha256"], Path(destination) / path)


def get_run(run):
    """Everything recorded about a run, given a Run, an id, a unique id prefix or a unique name."""
    mark_crashed_runs()
    return _store().get_run(_run_id(run))


def get_metric_history(run, key):
    return _store().metric_history(_run_id(run), key)


def list_experiments():
    return _store().list_experiments()


def search_runs(filter=None, *, experiment=None, order_by=None, limit=100, offset=0, output="pandas"):
    """Runs matching ``filter`` (e.g. ``"metrics.auc > 0.8 and params.model = 'rf'"``).

    ``experiment``: a name or list of names (default: all). ``order_by``: e.g.
    ``"metrics.auc desc"``. Returns a DataFrame, or a list of dicts with ``output="list"``.
    """
    if output not in ("pandas", "list"):
        raise InvalidInput(f"output must be 'pandas' or 'list', not {output!r}")
    store = _store()
    mark_crashed_runs()
    rows = store.search_runs(filter, order_by, _experiment_ids(store, experiment), limit, offset)
    return rows if output == "list" else runs_frame(rows)


def _experiment_ids(store, experiment):
    if experiment is None:
        return None
    names = [experiment] if isinstance(experiment, str) else list(experiment)
    return store.experiment_ids([check_name(n, "experiment name") for n in names])


def runs_frame(rows):
    """Search results as a DataFrame: one row a run, ``metrics.*``, ``params.*``, ``tags.*`` columns."""
    import pandas

    records = []
    for row in rows:
        record = {
            "run_id": row["id"],
            "name": row["name"],
            "experiment": row["experiment"],
            "status": row["status"],
            "user": row["user"],
            "start_time": row["start_time"],
            "end_time": row["end_time"],
        }
        for kind in ("metrics", "params", "tags"):
            record.update({f"{kind}.{key}": value for key, value in sorted(row[kind].items())})
        records.append(record)
    frame = pandas.DataFrame.from_records(records, columns=None if records else ["run_id", "name", "status"])
    for column in ("start_time", "end_time"):
        if column in frame:
            frame[column] = pandas.to_datetime(frame[column], unit="s", utc=True)
    return frame


# ---- models -----------------------------------------------------------------------------


def register_model(
    model, name, *, run=None, input_example=None, description=None, primary_metric=None, higher_is_better=None
):
    """Save a fitted model with skops as the next version of ``name``; return that version.

    ``run`` (default: the active run, if any) links the version to its run and snapshots
    the run's metrics. ``primary_metric`` is what the production gate compares.
    """
    from .models import serialize
    from .models.signature import infer_signature

    check_model_name(name)
    if primary_metric is not None:
        check_key(primary_metric, "primary metric")
    registry = current_registry()
    run_id = _run_id(run) if run is not None else (active_run().id if active_run() else None)
    source = registry.store.get_run(run_id) if run_id else {"metrics": {}, "datasets": []}
    data, trusted, fingerprint = serialize.dump(model)
    sha256, size = registry.artifacts.put_bytes(data)
    version = registry.store.create_model_version(
        name,
        config.current_user(),
        {
            "run_id": run_id,
            "artifact_sha256": sha256,
            "artifact_size": size,
            "fingerprint": fingerprint,
            "format": serialize.FORMAT,
            "trusted_types": json.dumps(trusted),
            "model_class": serialize.class_name(model),
            "signature": json.dumps(infer_signature(model, input_example, source["datasets"]), default=str),
            "metrics": json.dumps(source["metrics"]),
            "description": description,
        },
        primary_metric=primary_metric,
        higher_is_better=higher_is_better,
    )
    return registry.store.get_model_version(name, version=version)


def get_model_version(reference):
    """A version's record from ``name@alias``, ``name@latest`` or ``name/3``."""
    from .models.reference import parse_model_reference

    name, version, alias = parse_model_reference(reference)
    return _store().get_model_version(name, version=version, alias=alias)


def load_model(reference):
    """The model object for ``name@alias`` or ``name/3``, after verifying its bytes' sha256."""
    from .models import serialize

    entry = get_model_version(reference)
    data = current_registry().artifacts.get_bytes(entry["artifact_sha256"])
    model = serialize.load(data, entry["trusted_types"])
    _store().record_read("model", entry["name"], {"version": entry["version"], "reference": str(reference)},
                         config.current_user())
    return model


def list_models():
    return _store().list_models()


def list_versions(name):
    return _store().list_versions(check_model_name(name))


def model_history(name):
    """Every alias transition of a model: who moved what, when, from which version, and why."""
    return _store().alias_history(check_model_name(name))


def lineage(reference):
    """Where a model version came from: ``NAME`` (its latest version), ``NAME@ALIAS`` or ``NAME/3``.

    Returns ``{"model", "runs", "pipeline", "notebook", "training_sets", "nodes", "edges"}``:
    the run chain up to the pipeline run, the training sets and the feature versions they
    joined with their code hashes and source digests, and the same as a graph.
    """
    from .models import lineage as lineage_module

    version = get_model_version(reference if "@" in reference or "/" in reference else f"{reference}@latest") \
        if isinstance(reference, str) else get_model_version(reference)
    records = _store().lineage_records(version["run_id"]) if version["run_id"] else {"runs": [], "training_sets": []}
    return lineage_module.build(version, records)


def check_promotion(name, version, to, *, gates=None):
    """What the gates say about giving ``version`` of ``name`` the alias ``to``; changes nothing.

    Returns ``{"model", "alias", "from_version", "to_version", "verdicts", "passed", "changed"}``,
    ``changed`` telling whether promoting would move the alias at all.
    """
    result, verdicts = _promotion(name, version, to, gates)
    return {**result, "verdicts": [v.as_dict() for v in verdicts], "passed": all(v.passed for v in verdicts),
            "changed": result["from_version"] != result["to_version"]}


def _promotion(name, version, to, gates):
    from .models import gates as gates_module
    from .models.reference import parse_version

    check_model_name(name)
    alias = _check_alias(to)
    version = parse_version(version)
    store = _store()
    model = store.get_model(name)
    candidate = store.get_model_version(name, version=version)
    try:
        current = store.get_model_version(name, alias=alias)
    except NotFound:
        current = None
    result = {"model": name, "alias": alias, "from_version": current and current["version"], "to_version": version}
    if current is not None and current["version"] == version:
        return result, []
    promotion = gates_module.Promotion(model, candidate, current, alias)
    return result, [gate(promotion) for gate in (gates_module.DEFAULT_GATES if gates is None else gates)]


def promote(name, version, to, *, reason=None, force=False, gates=None):
    """Give ``version`` of model ``name`` the alias ``to``, if every gate passes.

    ``force=True`` overrides failed gates and needs a ``reason``; both are recorded.
    Returns ``{"model", "alias", "from_version", "to_version", "verdicts", "changed"}``.
    """
    from .errors import GateFailed

    if force and not (reason and reason.strip()):
        raise InvalidInput("a forced promotion needs a reason (--reason), which is recorded")
    result, verdicts = _promotion(name, version, to, gates)
    if result["from_version"] == result["to_version"]:
        return {**result, "verdicts": [], "changed": False}
    failed = [v for v in verdicts if not v.passed]
    if failed and not force:
        raise GateFailed(
            f"cannot promote {name} v{result['to_version']} to {result['alias']}: "
            + "; ".join(v.message for v in failed) + " (use force with a reason to override)",
            verdicts,
        )
    _store().move_alias(
        name,
        result["alias"],
        result["to_version"],
        config.current_user(),
        expected_from=result["from_version"],
        reason=reason,
        forced=bool(failed),
        verdicts=[v.as_dict() for v in verdicts],
    )
    return {**result, "verdicts": [v.as_dict() for v in verdicts], "changed": True}


def demote(name, alias, *, reason=None):
    """Take ``alias`` away from whichever version of ``name`` holds it."""
    check_model_name(name)
    alias = _check_alias(alias)
    current = _store().get_model_version(name, alias=alias)
    _store().move_alias(
        name, alias, None, config.current_user(), expected_from=current["version"], reason=reason
    )
    return {"model": name, "alias": alias, "from_version": current["version"], "to_version": None}


def _check_alias(alias):
    check_name(alias, "alias")
    if alias == "latest" or alias.isdigit():
        raise InvalidInput(f"{alias!r} cannot be an alias: 'latest' and numbers already mean versions")
    if "@" in alias:
        raise InvalidInput(f"alias {alias!r} must not contain '@'")
    return alias


# ---- features -----------------------------------------------------------------------------

_feature_callables = {}  # feature name -> callable rules (they live in this process, not in JSON)


def register_feature(name, values, *, entity, timestamp, code=None, sources=None, description=None, tags=None):
    """Register ``values`` (rows of entity, timestamp, value) as a version of feature ``name``.

    ``code`` and ``sources`` (``{name: DataFrame}``) are recorded; a change in either, or in
    the values, makes a new version, and the same again changes nothing. The feature's
    expectations are checked first: a failure raises ``GateFailed`` and registers nothing.
    Returns the version's record, with ``"created"`` telling whether it is new.
    """
    from .features import expectations, statistics, values as feature_values
    from .tracking.capture import code_hash
    from .tracking.fingerprint import fingerprint

    check_name(name, "feature name")
    check_name(entity, "entity column")
    check_name(timestamp, "timestamp column")
    frame = feature_values.normalize_values(name, values, entity, timestamp)
    recorded_sources = []
    for source_name, source in sorted((sources or {}).items()):
        digest, rows, schema = fingerprint(source)
        recorded_sources.append({"name": source_name, "digest": digest, "rows": rows, "schema": schema})
    values_digest = fingerprint(frame)[0]
    hashed_code = code_hash(code) if code is not None else None
    identity = json.dumps([hashed_code, [s["digest"] for s in recorded_sources], values_digest])
    store = _store()
    report = expectations.check_all(frame[name], _feature_rules(name, store))
    report.raise_if_failed(f"feature {name!r}")
    data = feature_values.to_parquet(frame)
    sha256, _ = current_registry().artifacts.put_bytes(data)
    version, created = store.register_feature_version(
        name,
        entity,
        timestamp,
        description,
        config.current_user(),
        {
            "fingerprint": code_hash(identity),
            "code_hash": hashed_code,
            "sources": json.dumps(recorded_sources),
            "dtype": str(frame[name].dtype),
            "rows": len(frame),
            "values_sha256": sha256,
            "statistics": json.dumps(statistics.describe(frame[name])),
            "checks": json.dumps(report.as_dict()),
            "tags": json.dumps(_string_map(tags or {}, "tag")),
            "run_id": active_run().id if active_run() else None,
        },
        code=code,
    )
    return {**store.get_feature_version(name, version), "created": created}


def _feature_rules(name, store):
    """The stored rules of a feature (none if it is new), plus its callables from this process."""
    from .features.expectations import rule_from_dict

    try:
        stored = [rule_from_dict(rule) for rule in store.get_expectations(name) if rule["rule"] != "callable"]
    except NotFound:
        stored = []
    return stored + _feature_callables.get(name, [])


def feature(name=None, *, entity, timestamp, description=None, tags=None):
    """Decorator: the function computes a feature from the DataFrames its parameters name.

    Calling the decorated function with those DataFrames computes the values and registers
    them (a new version when the code or sources changed) and returns the values.
    """
    import functools
    import inspect

    def decorate(function):
        feature_name = name or function.__name__
        try:
            source = inspect.getsource(function)
        except (OSError, TypeError):
            source = None

        @functools.wraps(function)
        def compute_and_register(*args, **kwargs):
            bound = inspect.signature(function).bind(*args, **kwargs)
            result = function(*args, **kwargs)
            register_feature(feature_name, result, entity=entity, timestamp=timestamp, code=source,
                             sources=dict(bound.arguments), description=description or function.__doc__, tags=tags)
            return result

        return compute_and_register

    return decorate


def expect(name, *rules):
    """Set the expectations of feature ``name`` (rule texts like ``"min=0"`` or callables).

    They are checked against its latest version now (the report is returned) and at every
    later registration and training-set build.
    """
    from .features import expectations

    check_name(name, "feature name")
    parsed = expectations.parse_rules(list(rules))
    store = _store()
    latest = store.get_feature_version(name)  # NotFound for an unknown feature, before any change
    store.set_expectations(name, [rule.as_dict() for rule in parsed], config.current_user())
    _feature_callables[name] = [rule for rule in parsed if isinstance(rule, expectations.CallableRule)]
    return expectations.check_all(feature_values(name, latest["version"])[name], parsed)


def get_feature(reference):
    """A feature version's record from ``name``, ``name@latest`` or ``name@3``."""
    name, version = _feature_reference(reference)
    return _store().get_feature_version(name, version)


def _feature_reference(reference):
    from .models.reference import parse_version

    if not isinstance(reference, str):
        raise InvalidInput(f"feature reference must be a string like 'name' or 'name@3', got {reference!r}")
    name, _, version = reference.partition("@")
    check_name(name, "feature name")
    return name, (None if version in ("", "latest") else parse_version(version))


def feature_values(name, version=None):
    """The registered values of a feature version, verified against their sha256."""
    from .features.values import from_parquet

    entry = _store().get_feature_version(name, version)
    return from_parquet(current_registry().artifacts.get_bytes(entry["values_sha256"]))


def list_features(search=None):
    return _store().list_features(search)


def training_set(name, entities, features, *, label=None, max_age=None):
    """Join each feature's value as of every entity row's timestamp onto ``entities``.

    ``features``: names, ``name@3`` references, or a comma-separated string. Every row of
    ``entities`` is kept, in order (null where no earlier value exists). The features'
    expectations are checked; the set is recorded, and linked to the active run if any.
    """
    import pandas

    from .features import expectations
    from .features.asof import point_in_time_join
    from .features.values import check_timestamps
    from .tracking.fingerprint import fingerprint

    check_name(name, "training set name")
    if not isinstance(entities, pandas.DataFrame):
        raise InvalidInput(f"entities must be a DataFrame, not {type(entities).__name__}")
    store = _store()
    entries = [get_feature(reference) for reference in _feature_list(features)]
    keys = {(entry["entity"], entry["timestamp"]) for entry in entries}
    if len(keys) > 1:
        raise InvalidInput(f"the features are keyed differently: {sorted(keys)}; build one training set per key")
    ((entity, timestamp),) = keys
    for column in (entity, timestamp) + ((label,) if label else ()):
        if column not in entities.columns:
            raise InvalidInput(f"entities have no column {column!r} (columns: {', '.join(map(str, entities.columns))})")
    check_timestamps(entities[timestamp], "entities")
    frames, checks = {}, {}
    for entry in entries:
        values = feature_values(entry["name"], entry["version"])
        report = expectations.check_all(values[entry["name"]], _feature_rules(entry["name"], store))
        report.raise_if_failed(f"training set {name!r}: feature {entry['name']!r} v{entry['version']}")
        frames[entry["name"]], checks[entry["name"]] = values, report.as_dict()
    result = point_in_time_join(entities, frames, entity=entity, timestamp=timestamp, max_age=max_age)
    digest, rows, _ = fingerprint(result)
    run = active_run()
    if run is not None:
        log_dataset(result, name, context="training", run=run)
    max_age_seconds = pandas.Timedelta(max_age).total_seconds() if max_age is not None else None
    store.record_training_set(
        {"name": name, "digest": digest, "entity": entity, "timestamp": timestamp, "label": label,
         "max_age_seconds": max_age_seconds, "rows": rows, "checks": json.dumps(checks),
         "run_id": run.id if run else None},
        [(entry["name"], entry["version"]) for entry in entries],
        config.current_user(),
    )
    return result


def training_sets_using(name):
    """Training sets built from feature ``name``, with their runs and the models registered from
    those runs: lineage from a feature towards production."""
    return _store().training_sets_using(check_name(name, "feature name"))


def list_feature_versions(name):
    return _store().list_feature_versions(check_name(name, "feature name"))


def compare_feature_versions(name, old=None, new=None):
    """How version ``new`` (default: the latest) of a feature differs from ``old`` (default:
    the one before): mean shift, null change, PSI with its band, and a one-line summary."""
    from .features import statistics

    new_entry = _store().get_feature_version(check_name(name, "feature name"), new)
    old_version = old if old is not None else new_entry["version"] - 1
    if old_version < 1:
        raise NotFound(f"feature {name!r} has only one version: nothing to compare with")
    old_entry = _store().get_feature_version(name, old_version)
    counts = None
    edges = (old_entry["statistics"].get("histogram") or {}).get("edges")
    if edges:
        counts = statistics.histogram_on(feature_values(name, new_entry["version"])[name], edges)
    return statistics.compare(old_entry["statistics"], new_entry["statistics"], new_counts_on_old_edges=counts)


# ---- online features ----------------------------------------------------------------------


def _feature_list(features):
    if isinstance(features, str):
        references = [f.strip() for f in features.split(",")]
    elif isinstance(features, (list, tuple)):
        references = list(features)
    else:
        raise InvalidInput(f"features must be a name, a comma-separated string or a list, not {type(features).__name__}")
    if not references or any(r == "" for r in references):
        raise InvalidInput("features must name at least one feature (and no empty names)")
    return references


def materialize(features, *, env="staging", store=None):
    """Write the latest value per entity of each feature version into the online store of ``env``.

    ``features``: names (their latest version), ``name@3`` references, or a comma-separated
    string. ``store``: None for the registry database, or a ``redis://`` URL. Each version's
    expectations are checked first; if any fails nothing is written. The env then holds exactly
    these versions' values (entities they lack are removed). Returns
    ``{feature: {"version", "entities"}}``; each materialisation is in the audit log.
    """
    from .features import expectations, online

    env = online.check_env(env)
    target = online.check_store(store)
    entries = [get_feature(reference) for reference in _feature_list(features)]
    names = [entry["name"] for entry in entries]
    if len(set(names)) != len(names):
        raise InvalidInput(f"a feature is named twice: {', '.join(names)}; materialise one version per feature")
    registry_store = _store()
    items = []
    for entry in entries:
        name, version = entry["name"], entry["version"]
        values = feature_values(name, version)
        report = expectations.check_all(values[name], _feature_rules(name, registry_store))
        report.raise_if_failed(f"materialize {name!r} v{version} to {env}")
        items.append((name, version, online.latest_values(values, name, entry["entity"], entry["timestamp"])))
    user = config.current_user()
    if target is None:
        registry_store.materialize_online(env, items, user)
    else:
        online.write_redis(target, env, items)
        registry_store.record_materializations(
            env, [(name, version, len(rows)) for name, version, rows in items], user, config.redact(target)
        )
    return {name: {"version": version, "entities": len(rows)} for name, version, rows in items}


_online_materialized = set()  # (store url, env, feature id): once materialised, always so


def get_online_features(features, entities, *, env="staging", store=None, output="frame"):
    """The online values of ``features`` for ``entities`` in ``env`` (as ``materialize`` left them).

    ``entities``: one entity value or a list (ints or strings). ``output="frame"`` (default)
    gives a DataFrame indexed by entity with a column per feature, null where an entity has no
    value; ``output="dict"`` gives ``{entity: {feature: value}}`` without touching pandas, the
    fastest path. Timestamps come back as ISO-8601 strings.
    """
    from .features import online

    env = online.check_env(env)
    target = online.check_store(store)
    if output not in ("frame", "dict"):
        raise InvalidInput(f"output must be 'frame' or 'dict', not {output!r}")
    names = _feature_list(features)
    registry_store = _store()
    keys_of = [registry_store.feature_key(_online_name(name)) for name in names]
    entities, keys = online.entity_keys(entities)
    if target is None:
        ids = [feature_id for feature_id, _ in keys_of]
        if len(set(ids)) != len(ids):
            raise InvalidInput(f"a feature is named twice: {', '.join(names)}")
        rows = registry_store.online_lookup(env, ids, list(set(keys)))
        # One JSON decode for all values: a decode per value would cost more than the query.
        decoded = json.loads("[" + ",".join([row[2] for row in rows]) + "]") if rows else ()
        found = {(row[0], row[1]): value for row, value in zip(rows, decoded)}
        url = registry_store.url
        for name, feature_id in zip(names, ids):
            if (url, env, feature_id) not in _online_materialized:
                if registry_store.online_version(env, feature_id) is None:
                    raise NotFound(online.not_materialized(name, env))
                _online_materialized.add((url, env, feature_id))
        columns = {name: [found.get((feature_id, key)) for key in keys] for name, feature_id in zip(names, ids)}
    else:
        columns = online.read_redis(target, env, names, keys)
    if output == "dict":
        return {entity: {name: columns[name][i] for name in names} for i, entity in enumerate(entities)}
    import pandas

    index_names = {entity_column for _, entity_column in keys_of}
    index = pandas.Index(entities, name=index_names.pop() if len(index_names) == 1 else None)
    return pandas.DataFrame(columns, index=index)  # columns= would cost more than the lookup


def _online_name(name):
    check_name(name, "feature name")
    if "@" in name:
        raise InvalidInput(
            f"online features are looked up by name ({name.partition('@')[0]!r}, not {name!r}): "
            "an env holds the one version materialised last"
        )
    return name


# ---- serving -----------------------------------------------------------------------------


def create_token(env, *, role="serve", description=None):
    """A new bearer token for the HTTP server of ``env``: ``{"id", "token", "env", "role"}``.

    The token is returned this once; the registry keeps only its SHA-256. ``role``: "serve"
    (features and predictions) or "admin" (also the server's administrative endpoints).
    """
    from .features.online import check_env
    from .serving import tokens

    check_env(env)
    if role not in tokens.ROLES:
        raise InvalidInput(f"role must be one of {', '.join(tokens.ROLES)}, not {role!r}")
    if description is not None and not isinstance(description, str):
        raise InvalidInput(f"description must be text, not {type(description).__name__}")
    token_id, token = tokens.new_token()
    row = {"id": token_id, "token_sha256": tokens.token_sha256(token), "env": env, "role": role,
           "description": description}
    _store().create_token(row, config.current_user())
    return {"id": token_id, "token": token, "env": env, "role": role}


def list_tokens():
    """Every token's id, env, role, description, creation and revocation (never the token)."""
    return _store().list_tokens()


def revoke_token(token_id):
    """Revoke a token by its id: servers refuse it within a second."""
    if not isinstance(token_id, str) or not token_id:
        raise InvalidInput(f"token id must be text like 'tok_…', not {token_id!r}")
    _store().revoke_token(token_id, config.current_user())


def served_requests(object_name=None, *, env=None, kind=None, since=None, until=None, limit=None):
    """The requests servers answered, oldest first, as the request log recorded them.

    ``object_name``: a model name (or the served feature names joined by ","); ``kind``:
    "features" or "predict"; ``since``/``until``: epoch seconds or datetimes. Each row has
    ``id`` (the request id callers got), ``at``, ``env``, ``kind``, ``object_name``,
    ``version``, ``token_id``, ``status``, ``latency_ms``, ``rows``, ``inputs`` and ``outputs``
    (lists with one item per record or entity; None for refused requests) and ``error``.
    """
    if kind not in (None, "features", "predict"):
        raise InvalidInput(f"kind must be 'features' or 'predict', not {kind!r}")
    return _store().served_requests(object_name, env, kind, _epoch(since, "since"), _epoch(until, "until"), limit)


def _epoch(value, what):
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    if hasattr(value, "timestamp"):
        return value.timestamp()
    raise InvalidInput(f"{what} must be epoch seconds or a datetime, not {value!r}")


# ---- pipelines ---------------------------------------------------------------------------


def convert(notebook, out=None):
    """Turn a notebook (a path or an nbformat node) into a pipeline folder; return the Pipeline.

    Conversion reads nothing but the notebook; ``out`` defaults to ``NOTEBOOK_pipeline`` beside it.
    """
    from .pipeline.convert import convert as convert_notebook

    pipeline = convert_notebook(notebook)
    if out is None:
        if not isinstance(notebook, (str, Path)):
            raise InvalidInput("say where to write the pipeline: out=DIR (the notebook was given as an object)")
        out = Path(notebook).with_name(f"{Path(notebook).stem}_pipeline")
    pipeline.write(out)
    return pipeline


def run_pipeline(directory, *, params=None, executor="local", scheduler=None, only=None):
    """Run a converted pipeline as a run with one child run per step; unchanged steps come from cache."""
    from .pipeline.runner import run

    return run(directory, params=params, executor=executor, scheduler=scheduler, only=only)


def export_pipeline(directory, to, *, out=None):
    """Write a Kubeflow Pipelines (``to="kfp"``) or Airflow (``to="airflow"``) job; return its path."""
    from .pipeline.export import export

    return export(directory, to, out=out)


def verify_pipeline(directory, *, params=None):
    """Run the pipeline and its notebook and compare each step's outputs; return the report."""
    from .pipeline.verify import verify

    return verify(directory, params=params)


def finished_runs_tagged(key, values):
    """FINISHED runs tagged ``key`` with one of ``values``, newest first:
    ``[(tag value, run id, {artifact path: (sha256, size)})]`` (the pipeline cache's lookup)."""
    return _store().finished_runs_tagged(key, list(values))


def store_bytes(data, path, *, run=None):
    """Store ``data`` content-addressed as artifact ``path`` of the run; return ``(sha256, size)``."""
    run_id = _target(run)
    registry = current_registry()
    sha256, size = registry.artifacts.put_bytes(data)
    registry.store.record_artifacts(run_id, {check_relative_path(path): (sha256, size)}, config.current_user())
    return sha256, size


def record_stored_artifacts(entries, *, run=None):
    """Record ``{path: (sha256, size)}`` of blobs the artifact store already holds (no copy)."""
    entries = {check_relative_path(path): value for path, value in entries.items()}
    _store().record_artifacts(_target(run), entries, config.current_user())


def artifact_bytes(sha256):
    """A stored blob's bytes, verified against ``sha256``."""
    return current_registry().artifacts.get_bytes(sha256)


def artifacts_present(sha256s):
    """Whether the artifact store still holds every one of these blobs."""
    artifacts = current_registry().artifacts
    locations = [artifacts.location(sha256) for sha256 in sha256s]
    if all("://" not in location for location in locations):
        return all(Path(location).is_file() for location in locations)
    import fsspec

    return all(fsspec.core.url_to_fs(location)[0].exists(location) for location in locations)


def audit(object_name=None, *, user=None, since=None, limit=1000):
    """Who did what to which object, newest first."""
    return _store().audit_entries(object_name, user, since, limit)


def audit_report(object_name=None, *, user=None, since=None, limit=1000):
    """Who created, read, promoted and served what, newest first, as a DataFrame: the audit log's
    rows, plus served requests counted per day, object, env and token (not one row per request;
    ``user`` of a served row is who created its token)."""
    import pandas

    since = _epoch(since, "since")
    entries = [{"at": row["at"], "user": row["user"], "action": row["action"], "object_type": row["object_type"],
                "object_name": row["object_name"], "count": 1, "detail": row["detail"]}
               for row in audit(object_name, user=user, since=since, limit=limit)]
    for row in _store().served_counts(object_name, user, since):
        entries.append({
            "at": row["day"], "user": row["user"] or row["token_id"] or "?", "action": f"served {row['kind']}",
            "object_type": "model" if row["kind"] == "predict" else "feature", "object_name": row["object_name"],
            "count": row["requests"],
            "detail": {"env": row["env"], "token": row["token_id"], "rows": row["rows"], "errors": row["errors"]},
        })
    frame = pandas.DataFrame(entries, columns=["at", "user", "action", "object_type", "object_name", "count", "detail"])
    frame["at"] = pandas.to_datetime(frame["at"], unit="s", utc=True)
    return frame.sort_values("at", ascending=False, kind="stable").head(limit).reset_index(drop=True)


def log_labels(labels):
    """Bring back ground truth for served predictions, by request id (and row within the request).

    ``labels``: ``{request_id: label}`` (the request's first row), or a DataFrame with columns
    ``request_id``, ``label`` and optionally ``row``. All or nothing: an unknown request id or
    row writes no label. A label given again replaces the old one. Returns how many were written.
    """
    import pandas

    if isinstance(labels, dict):
        frame = pandas.DataFrame({"request_id": list(labels), "row": 0, "label": list(labels.values())})
    elif isinstance(labels, pandas.DataFrame):
        missing = [column for column in ("request_id", "label") if column not in labels.columns]
        if missing:
            raise InvalidInput(f"labels need a column {missing[0]!r} (columns: {', '.join(map(str, labels.columns))})")
        frame = labels.assign(row=labels["row"] if "row" in labels.columns else 0)
    else:
        raise InvalidInput(f"labels must be a dict of request id to label or a DataFrame, not {type(labels).__name__}")
    if frame.empty:
        raise InvalidInput("no labels given")
    if not all(isinstance(value, str) and value for value in frame["request_id"]):
        raise InvalidInput("request ids must be non-empty text (the request_id a prediction answered with)")
    if not pandas.api.types.is_integer_dtype(frame["row"]):
        raise InvalidInput(f"row must hold whole numbers, not {frame['row'].dtype}")
    duplicated = frame.duplicated(["request_id", "row"])
    if duplicated.any():
        twice = frame[duplicated].iloc[0]
        raise InvalidInput(f"request {twice['request_id']!r} row {twice['row']} is labelled twice")
    if frame["label"].isna().any():
        raise InvalidInput("a label is missing (None or NaN); leave that prediction out instead")
    rows = [{"request_id": request_id, "row": int(row), "label": json.dumps(_plain(label))}
            for request_id, row, label in zip(frame["request_id"], frame["row"], frame["label"])]
    _store().record_labels(rows, config.current_user())
    return len(rows)


def _plain(value):
    # numpy scalars (a DataFrame's cells) as the Python values JSON knows.
    return value.item() if hasattr(value, "item") else value


def monitor(name, *, env="production", since=None, bucket="auto", thresholds=None, record=True):
    """How the version of ``name`` holding alias ``env`` does in serving: a dict with

    ``drift`` (per input feature: PSI and KS of served values against the training set's feature
    versions), ``predictions`` (their distribution per hour or day), ``performance`` (accuracy,
    or MAE and RMSE, where labels came back, against the version's training metrics) and its
    ``performance_over_time``, ``healthy`` (None without enough served rows) and ``reasons``.
    ``thresholds`` overrides ``models.monitoring.DEFAULT_THRESHOLDS``. With ``record`` the
    verdict is kept (as an audit row), which ``unhealthy_models`` reads back.
    """
    from .features.online import check_env
    from .models import monitoring

    check_model_name(name)
    env = check_env(env)
    if bucket not in ("auto", "hour", "day"):
        raise InvalidInput(f"bucket must be 'auto', 'hour' or 'day', not {bucket!r}")
    limits = monitoring.check_thresholds(thresholds)
    since = _epoch(since, "since")
    store = _store()
    version = store.get_model_version(name, alias=env)
    requests = [request for request in store.served_requests(name, env, "predict", since)
                if request["status"] < 400 and request["version"] == version["version"]]
    served = monitoring.served_rows(requests)
    frequency = monitoring.bucket_size(served, bucket)
    outputs = version["signature"].get("outputs") or {}
    classes = outputs.get("classes") if outputs.get("kind") == "class" else None
    drift = monitoring.feature_drift(served, _drift_references(version, served), limits)
    summary, over_time = monitoring.performance(
        served, {key: json.loads(label) for key, label in store.served_labels(name, env, since).items()},
        frequency, classes, version["metrics"], limits)
    reasons = monitoring.reasons(drift, summary)
    healthy = False if reasons else (None if len(served) < limits["min_rows"] else True)
    result = {"model": name, "version": version["version"], "env": env, "since": since, "requests": len(requests),
              "rows": len(served), "healthy": healthy, "reasons": reasons, "thresholds": limits, "drift": drift,
              "predictions": monitoring.prediction_distribution(served, frequency, classes),
              "performance": summary, "performance_over_time": over_time}
    if record:
        store.record_monitoring(name, {"env": env, "version": version["version"], "healthy": healthy,
                                       "reasons": reasons, "rows": len(served), "since": since},
                                config.current_user())
    return result


def _drift_references(version, served):
    """``{input column: reference or None}``: each model input with the feature version its
    training set joined (stored statistics and values), None for inputs that are no feature."""
    inputs = [column["name"] for column in version["signature"].get("inputs") or [] if column["name"]]
    inputs = inputs or [column.removeprefix("input.") for column in served.columns if column.startswith("input.")]
    records = _store().lineage_records(version["run_id"]) if version["run_id"] else {"training_sets": []}
    joined = {feature["name"]: feature["version"]
              for training_set in records["training_sets"] for feature in training_set["features"]}
    references = {}
    for column in inputs:
        if column in joined:
            entry = get_feature(f"{column}@{joined[column]}")
            references[column] = {"name": column, "version": entry["version"], "statistics": entry["statistics"],
                                  "values": feature_values(column, entry["version"])[column]}
        else:
            references[column] = None
    return references


def unhealthy_models():
    """Models whose latest recorded monitoring (``monitor``) found them unhealthy, while the
    version checked still holds that env's alias: ``[{"model", "env", "version", "at", "reasons"}]``.
    Reads recorded verdicts only, so it is cheap enough for ``%mlops status``."""
    store = _store()
    holders = {}
    found = []
    for verdict in store.latest_monitoring():
        if verdict["healthy"] is not False:
            continue
        env = verdict["env"]
        if env not in holders:
            holders[env] = store.alias_holders(env)
        if holders[env].get(verdict["model"]) == verdict["version"]:
            found.append({key: verdict[key] for key in ("model", "env", "version", "at", "reasons")})
    return found


def registry_counts():
    """Rows per table, for a quick look at what a registry holds."""
    return _store().counts()


# ---- for the Jupyter server ----------------------------------------------------------------


def count_runs(filter=None, *, experiment=None):
    """How many runs ``search_runs(filter, experiment=...)`` would find without a limit."""
    store = _store()
    return store.count_runs(filter, _experiment_ids(store, experiment))


def registry_overview():
    """How many features, experiments, runs, models and model versions the registry holds."""
    return _store().overview_counts()


def feature_summaries(search=None):
    """Each feature's latest version with its stored expectations checked against it now:
    ``expectations`` is ``{"rules", "status": "passed"|"failed"|"none", "failures": [lines]}``.
    Callable rules live only in the process that attached them and are not checked here."""
    if search is not None and not isinstance(search, str):
        raise InvalidInput(f"search must be text, not {type(search).__name__}")
    summaries = []
    for entry in _store().feature_summaries(search):
        rules = entry.pop("rules")
        report = _check_stored_rules(entry["name"], entry.pop("values_sha256"), rules)
        status = "none" if not report.results else "passed" if report.passed else "failed"
        summaries.append({**entry, "expectations": {
            "rules": len(rules), "status": status, "failures": [r.message() for r in report.failures]}})
    return summaries


def feature_expectations(name):
    """Each stored expectation of feature ``name`` with its result on the latest version:
    ``[{"rule": text, "passed": True|False|None, "message"}]`` (None: a callable, not checkable here)."""
    from .features.expectations import rule_from_dict

    store = _store()
    latest = store.get_feature_version(check_name(name, "feature name"))
    rules = store.get_expectations(name)
    results = iter(_check_stored_rules(name, latest["values_sha256"], rules).results)
    listed = []
    for rule in rules:
        if rule["rule"] == "callable":
            listed.append({"rule": rule.get("name", "callable"), "passed": None,
                           "message": "a Python callable: checked where it was attached"})
        else:
            result = next(results)
            listed.append({"rule": rule_from_dict(rule).text(), "passed": bool(result.passed),
                           "message": result.message()})
    return listed


def _check_stored_rules(name, values_sha256, rules):
    from .features.expectations import Report

    checkable = [rule for rule in rules if rule["rule"] != "callable"]
    if not checkable:
        return Report()  # nothing to check: the values need not be read
    return _checked_values(name, values_sha256, json.dumps(checkable, sort_keys=True))


@functools.lru_cache(maxsize=1024)
def _checked_values(name, values_sha256, rules_json):
    # Values are content-addressed and rules are in the key: a cached report never goes stale.
    from .features.expectations import check_all, rule_from_dict
    from .features.values import from_parquet

    values = from_parquet(current_registry().artifacts.get_bytes(values_sha256))[name]
    return check_all(values, [rule_from_dict(rule) for rule in json.loads(rules_json)])


def disconnect():
    """Close the current registry and forget its active runs and experiment."""
    global _registry, _experiment
    with _lock:
        if _registry is not None:
            _registry.close()
        _registry = None
        _experiment = DEFAULT_EXPERIMENT
        _active_runs.clear()
        _next_step.clear()
        _feature_callables.clear()

