"""A transfer may fill its key by a server-side copy of content already stored.

``copy_source_key`` and ``copy_source_etag`` name the object to copy and the
ETag it must still have (the copy is conditional on it), so a copy resumed
after a crash copies the same verified bytes or none.

Revision ID: j0005
Revises: j0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0005"
down_revision = "j0004"


def upgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.add_column(sa.Column("copy_source_key", sa.Text, nullable=True))
        batch.add_column(sa.Column("copy_source_etag", sa.String(80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("copy_source_etag")
        batch.drop_column("copy_source_key")
