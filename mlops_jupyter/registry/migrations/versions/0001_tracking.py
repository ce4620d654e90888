"""Tracking: experiments, runs, code snapshots, params, metrics (with latest values), tags, artifacts, datasets, audit.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

_SQLITE_TRIGGER = """
CREATE TRIGGER metrics_keep_latest AFTER INSERT ON metrics
BEGIN
  INSERT INTO latest_metrics (run_id, key, value, step, "timestamp")
  VALUES (NEW.run_id, NEW.key, NEW.value, NEW.step, NEW."timestamp")
  ON CONFLICT (run_id, key) DO UPDATE
    SET value = excluded.value, step = excluded.step, "timestamp" = excluded."timestamp"
    WHERE excluded.step > latest_metrics.step
       OR (excluded.step = latest_metrics.step AND excluded."timestamp" >= latest_metrics."timestamp");
END
"""

_POSTGRES_FUNCTION = """
CREATE FUNCTION metrics_keep_latest() RETURNS trigger AS $$
BEGIN
  INSERT INTO latest_metrics AS lm (run_id, key, value, step, "timestamp")
  VALUES (NEW.run_id, NEW.key, NEW.value, NEW.step, NEW."timestamp")
  ON CONFLICT (run_id, key) DO UPDATE
    SET value = EXCLUDED.value, step = EXCLUDED.step, "timestamp" = EXCLUDED."timestamp"
    WHERE EXCLUDED.step > lm.step
       OR (EXCLUDED.step = lm.step AND EXCLUDED."timestamp" >= lm."timestamp");
  RETURN NULL;
END
$$ LANGUAGE plpgsql
"""

_POSTGRES_TRIGGER = """
CREATE TRIGGER metrics_keep_latest AFTER INSERT ON metrics
FOR EACH ROW EXECUTE FUNCTION metrics_keep_latest()
"""


def upgrade():
    op.create_table(
        "registry_info",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "runs",
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
        sa.Column("code_hash", sa.String(64)),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("python_version", sa.String(64)),
        sa.Column("packages", sa.Text),
        sa.Column("owner_host", sa.String(255)),
        sa.Column("owner_pid", sa.Integer),
        sa.Column("owner_started", sa.Double),
    )
    for name, columns in {
        "ix_runs_experiment_start": ["experiment_id", "start_time"],
        "ix_runs_start": ["start_time"],
        "ix_runs_status": ["status"],
        "ix_runs_name": ["name"],
        "ix_runs_user": ["user"],
        "ix_runs_parent": ["parent_run_id"],
    }.items():
        op.create_index(name, "runs", columns)

    op.create_table(
        "code_snapshots",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("code", sa.Text, nullable=False),
    )
    op.create_table(
        "params",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("value_number", sa.Double),
    )
    op.create_index("ix_params_key_value", "params", ["key", "value"])
    op.create_index("ix_params_key_number", "params", ["key", "value_number"])

    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.Double, nullable=False),
    )
    op.create_index("ix_metrics_run_key_step", "metrics", ["run_id", "key", "step"])

    op.create_table(
        "latest_metrics",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Double),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.Double, nullable=False),
    )
    op.create_index("ix_latest_metrics_key_value", "latest_metrics", ["key", "value"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute(_SQLITE_TRIGGER)
    else:
        op.execute(_POSTGRES_FUNCTION)
        op.execute(_POSTGRES_TRIGGER)

    op.create_table(
        "tags",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_index("ix_tags_key_value", "tags", ["key", "value"])

    op.create_table(
        "artifacts",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )

    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("context", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("rows", sa.BigInteger),
        sa.Column("schema", sa.Text, nullable=False),
        sa.Column("logged_at", sa.Double, nullable=False),
    )
    op.create_index("ix_datasets_run", "datasets", ["run_id"])
    op.create_index("ix_datasets_digest", "datasets", ["digest"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_name", sa.String(1024), nullable=False),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_audit_object", "audit_log", ["object_type", "object_name", "at"])
    op.create_index("ix_audit_at", "audit_log", ["at"])
    op.create_index("ix_audit_user", "audit_log", ["user", "at"])
