"""A finished transfer can be cleared from the window and stay in the history.

``cleared_at`` is when a person chose "Clear finished": the window no longer
loads the row at start; ``ferry status`` and the attempt history still have it.

Revision ID: j0006
Revises: j0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0006"
down_revision = "j0005"


def upgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.add_column(sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("cleared_at")
