"""Online features: the latest materialised value per (env, feature, entity).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade():
    op.create_table(
        "online_features",
        sa.Column("env", sa.String(64), primary_key=True),
        sa.Column("feature_id", sa.Integer, sa.ForeignKey("features.id"), primary_key=True),
        sa.Column("entity_key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text),
        sa.Column("event_time", sa.Double, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
