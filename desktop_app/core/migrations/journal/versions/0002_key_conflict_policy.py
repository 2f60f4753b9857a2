"""What to do when a transfer's key is taken by other content.

Revision ID: j0002
Revises: j0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0002"
down_revision = "j0001"


def upgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.add_column(
            sa.Column("on_conflict", sa.String(16), nullable=False, server_default="fail")
        )


def downgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("on_conflict")
