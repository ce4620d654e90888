"""Features: definitions, versions with their values and checks, expectations, training sets.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade():
    op.create_table(
        "features",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("entity", sa.String(255), nullable=False),
        sa.Column("timestamp", sa.String(255), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "feature_versions",
        sa.Column("feature_id", sa.Integer, sa.ForeignKey("features.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("code_hash", sa.String(64)),
        sa.Column("sources", sa.Text, nullable=False),
        sa.Column("dtype", sa.String(64), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("values_sha256", sa.String(64), nullable=False),
        sa.Column("statistics", sa.Text, nullable=False),
        sa.Column("checks", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id")),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_index("ix_feature_versions_fingerprint", "feature_versions", ["feature_id", "fingerprint"])
    op.create_table(
        "feature_expectations",
        sa.Column("feature_id", sa.Integer, sa.ForeignKey("features.id"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "training_sets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
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
    )
    op.create_index("ix_training_sets_name", "training_sets", ["name", "created_at"])
    op.create_index("ix_training_sets_digest", "training_sets", ["digest"])
    op.create_table(
        "training_set_features",
        sa.Column("training_set_id", sa.Integer, sa.ForeignKey("training_sets.id"), primary_key=True),
        sa.Column("feature_id", sa.Integer, sa.ForeignKey("features.id"), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_training_set_features_feature", "training_set_features", ["feature_id", "version"])
