"""Serving: bearer tokens (hashes only), the log of served requests, and labels brought back.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade():
    op.create_table(
        "api_tokens",
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
    op.create_table(
        "served_requests",
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
    )
    op.create_index("ix_served_requests_object_at", "served_requests", ["object_name", "at"])
    op.create_index("ix_served_requests_env_at", "served_requests", ["env", "at"])
    op.create_table(
        "prediction_labels",
        sa.Column("request_id", sa.String(32), primary_key=True),
        sa.Column("row", sa.Integer, primary_key=True),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("logged_at", sa.Double, nullable=False),
        sa.Column("logged_by", sa.String(255), nullable=False),
    )
