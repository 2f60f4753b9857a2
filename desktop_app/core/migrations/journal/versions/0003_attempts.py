"""Every attempt of a transfer: when, how it ended, the bytes it sent.

Revision ID: j0003
Revises: j0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0003"
down_revision = "j0002"


def upgrade() -> None:
    op.create_table(
        "attempts",
        sa.Column("transfer_id", sa.Integer, primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error_kind", sa.String(32), nullable=True),
        sa.Column("error_title", sa.Text, nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("bytes_sent", sa.BigInteger, nullable=False),
    )
    # Kinds were free strings before; the enum knows "input" and "transient"
    # and "permanent" and "source_changed" already, so old rows stay readable.


def downgrade() -> None:
    op.drop_table("attempts")
