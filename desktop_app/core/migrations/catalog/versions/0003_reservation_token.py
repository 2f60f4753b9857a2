"""A pending row belongs to one transfer: the token of the upload that reserved it.

Only the transfer holding the token may resume, activate, release or
compensate the reservation; a second Ferry uploading the same content to the
same key waits for the first instead of taking its row over.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("token", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("token")
