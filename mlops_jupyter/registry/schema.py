"""The registry's tables, in SQLAlchemy Core. Migrations create them; this module describes them.

Times are seconds since the epoch (double precision): one type on SQLite and PostgreSQL,
cheap to sort and compare. A test checks that the migrations build exactly these tables.
"""

import sqlalchemy as sa

metadata = sa.MetaData()

# Key/value facts about the registry itself (e.g. where its artifacts live).
registry_info = sa.Table(
    "registry_info",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("user", sa.String(255), nullable=False),
    sa.Column("start_time", sa.Double, nullable=False),
    sa.Column("end_time", sa.Double),
    sa.Column("parent_run_id", sa.String(32), sa.ForeignKey("runs.id")),
    sa.Column("notebook_path", sa.Text),
    sa.Column("source_path", sa.Text),
    # The run's code lives once per distinct text in code_snapshots, keyed by this hash.
    sa.Column("code_hash", sa.String(64)),
    sa.Column("git_commit", sa.String(64)),
    sa.Column("python_version", sa.String(64)),
    # JSON object {distribution: version} of the top-level packages imported at run start.
    sa.Column("packages", sa.Text),
    # Which process owns a RUNNING run, so a killed owner can be detected and the run marked crashed.
    sa.Column("owner_host", sa.String(255)),
    sa.Column("owner_pid", sa.Integer),
    sa.Column("owner_started", sa.Double),
    sa.Index("ix_runs_experiment_start", "experiment_id", "start_time"),
    sa.Index("ix_runs_start", "start_time"),
    sa.Index("ix_runs_status", "status"),
    sa.Index("ix_runs_name", "name"),
    sa.Index("ix_runs_user", "user"),
    sa.Index("ix_runs_parent", "parent_run_id"),
)

# A script re-run a thousand times is stored once.
code_snapshots = sa.Table(
    "code_snapshots",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("code", sa.Text, nullable=False),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    # The value as a number when it is one, so `params.lr < 0.1` compares numbers, not text.
    sa.Column("value_number", sa.Double),
    sa.Index("ix_params_key_value", "key", "value"),
    sa.Index("ix_params_key_number", "key", "value_number"),
)

# Every logged point; NaN is stored as NULL (SQLite cannot hold NaN) and read back as NaN.
metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("value", sa.Double),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Index("ix_metrics_run_key_step", "run_id", "key", "step"),
)

# The value at the highest step of each metric, kept by a database trigger on `metrics`
# so that logging stays one INSERT and search joins one row per run and key.
latest_metrics = sa.Table(
    "latest_metrics",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Double),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Index("ix_latest_metrics_key_value", "key", "value"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Index("ix_tags_key_value", "key", "value"),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("context", sa.String(64), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("rows", sa.BigInteger),
    # JSON: {"kind": "DataFrame", "shape": [...], "columns": {name: dtype}}.
    sa.Column("schema", sa.Text, nullable=False),
    sa.Column("logged_at", sa.Double, nullable=False),
    sa.Index("ix_datasets_run", "run_id"),
    sa.Index("ix_datasets_digest", "digest"),
)

registered_models = sa.Table(
    "registered_models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("description", sa.Text),
    # The metric the default promotion gate compares, and whether higher is better.
    sa.Column("primary_metric", sa.String(255)),
    sa.Column("higher_is_better", sa.Boolean),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("registered_models.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id")),
    sa.Column("artifact_sha256", sa.String(64), nullable=False),
    sa.Column("artifact_size", sa.BigInteger, nullable=False),
    # A hash of the fitted object's content; skops files differ byte-wise between saves.
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("format", sa.String(32), nullable=False),
    # JSON list of the types skops must be told to trust to load this exact file.
    sa.Column("trusted_types", sa.Text, nullable=False),
    sa.Column("model_class", sa.String(255), nullable=False),
    # JSON: {"inputs": [{"name", "dtype"}...] | null, "n_features": int, "outputs": {...}}.
    sa.Column("signature", sa.Text, nullable=False),
    # JSON snapshot of the source run's latest metrics at registration time.
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Index("ix_model_versions_run", "run_id"),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("registered_models.id"), primary_key=True),
    sa.Column("alias", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

alias_transitions = sa.Table(
    "alias_transitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("registered_models.id"), nullable=False),
    sa.Column("alias", sa.String(255), nullable=False),
    sa.Column("from_version", sa.Integer),
    sa.Column("to_version", sa.Integer),
    sa.Column("user", sa.String(255), nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("forced", sa.Boolean, nullable=False),
    # JSON list of the gates' verdicts at the time of the transition.
    sa.Column("verdicts", sa.Text, nullable=False),
    sa.Index("ix_alias_transitions_model", "model_id", "at"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("user", sa.String(255), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("object_type", sa.String(32), nullable=False),
    sa.Column("object_name", sa.String(1024), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Index("ix_audit_object", "object_type", "object_name", "at"),
    sa.Index("ix_audit_at", "at"),
    sa.Index("ix_audit_user", "user", "at"),
)

features = sa.Table(
    "features",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    # The column names that key the feature's values: which entity, as of when.
    sa.Column("entity", sa.String(255), nullable=False),
    sa.Column("timestamp", sa.String(255), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
)

feature_versions = sa.Table(
    "feature_versions",
    metadata,
    sa.Column("feature_id", sa.Integer, sa.ForeignKey("features.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    # Hash of the code and the sources' fingerprints: the same again is not a new version.
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("code_hash", sa.String(64)),  # the code itself is in code_snapshots
    # JSON list of {"name", "digest", "rows", "schema"} of the source DataFrames.
    sa.Column("sources", sa.Text, nullable=False),
    sa.Column("dtype", sa.String(64), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    # The computed (entity, timestamp, value) rows, as Parquet in the artifact store.
    sa.Column("values_sha256", sa.String(64), nullable=False),
    sa.Column("statistics", sa.Text, nullable=False),  # JSON from features.statistics.describe
    sa.Column("checks", sa.Text, nullable=False),  # JSON report of the expectations at registration
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id")),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Index("ix_feature_versions_fingerprint", "feature_id", "fingerprint"),
)

# The rules every new version, training set and served value of a feature is checked against.
feature_expectations = sa.Table(
    "feature_expectations",
    metadata,
    sa.Column("feature_id", sa.Integer, sa.ForeignKey("features.id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("rule", sa.Text, nullable=False),  # JSON from Rule.as_dict()
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
)

training_sets = sa.Table(
    "training_sets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    # The fingerprint of the built DataFrame: equal to the dataset digest a run logs for it.
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("entity", sa.String(255), nullable=False),
    sa.Column("timestamp", sa.String(255), nullable=False),
    sa.Column("label", sa.String(255)),
    sa.Column("max_age_seconds", sa.Double),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("checks", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id")),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Index("ix_training_sets_name", "name", "created_at"),
    sa.Index("ix_training_sets_digest", "digest"),
)

training_set_features = sa.Table(
    "training_set_features",
    metadata,
    sa.Column("training_set_id", sa.Integer, sa.ForeignKey("training_sets.id"), primary_key=True),
    sa.Column("feature_id", sa.Integer, sa.ForeignKey("features.id"), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_training_set_features_feature", "feature_id", "version"),
)

# The latest value per entity of a materialised feature version, per serving env ("staging",
# "production"…), read by mlops.get_online_features and the feature server. ``entity_key`` is
# the entity as canonical text (features.online.entity_key: str of an int, the str itself);
# ``value`` is JSON; ``event_time`` is the value's timestamp in epoch seconds.
online_features = sa.Table(
    "online_features",
    metadata,
    sa.Column("env", sa.String(64), primary_key=True),
    sa.Column("feature_id", sa.Integer, sa.ForeignKey("features.id"), primary_key=True),
    sa.Column("entity_key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text),
    sa.Column("event_time", sa.Double, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

# Bearer tokens of the HTTP server. Only the SHA-256 of a token is kept; ``id`` is public (shown
# by `mlops token list`, recorded with each served request). ``role``: "serve" reads features
# and predicts, "admin" may also do anything administrative. A token serves one ``env`` only.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("env", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("revoked_at", sa.Double),
    sa.Column("revoked_by", sa.String(255)),
)

# Every request the HTTP server answered for features or predictions, written in batches by
# serving.request_log. ``id`` is the request id returned to the caller (header X-Request-Id and
# body "request_id"), which mlops.log_labels refers to. ``kind``: "features" | "predict";
# ``object_name``: the model name, or the feature names joined by ","; ``version``: the model
# version that answered (None for features). ``inputs``/``outputs``: JSON lists with one item per
# row, None on errors: for features the entities and a {feature: value} per entity; for predict
# the records the model got (looked up online when the caller sent entities) and the predictions.
# ``error``: the one-line reason of a 4xx/5xx.
served_requests = sa.Table(
    "served_requests",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("env", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("object_name", sa.String(1024), nullable=False),
    sa.Column("version", sa.Integer),
    sa.Column("token_id", sa.String(32)),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Double, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("inputs", sa.Text),
    sa.Column("outputs", sa.Text),
    sa.Column("error", sa.Text),
    sa.Index("ix_served_requests_object_at", "object_name", "at"),
    sa.Index("ix_served_requests_env_at", "env", "at"),
)

# Ground truth for served predictions: ``row`` is the position in the request's records.
# No foreign key to served_requests: a label may arrive before the request log's batch lands.
prediction_labels = sa.Table(
    "prediction_labels",
    metadata,
    sa.Column("request_id", sa.String(32), primary_key=True),
    sa.Column("row", sa.Integer, primary_key=True),
    sa.Column("label", sa.Text, nullable=False),  # JSON
    sa.Column("logged_at", sa.Double, nullable=False),
    sa.Column("logged_by", sa.String(255), nullable=False),
)
