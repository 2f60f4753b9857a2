"""Proof of bytes: the source's ctime, and the token of the catalog reservation.

ctime is part of a source's identity: a rewrite keeping size and mtime still
moves it. The token names the one transfer that owns its catalog reservation.
The upload intent is noted before CreateMultipartUpload, so that an upload
created just before a crash is found again (by listing that key's uploads).

Revision ID: j0004
Revises: j0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0004"
down_revision = "j0003"


def upgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        # 0: not recorded (transfers queued before this), left out of comparisons.
        batch.add_column(
            sa.Column("source_ctime_ns", sa.BigInteger, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("reservation_token", sa.String(32), nullable=True))
        batch.add_column(sa.Column("upload_intent_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("upload_intent_at")
        batch.drop_column("reservation_token")
        batch.drop_column("source_ctime_ns")
