"""The pre-pass keeps each planned part's MD5, so the sending pass hashes nothing again.

Revision ID: j0007
Revises: j0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0007"
down_revision = "j0006"


def upgrade() -> None:
    op.create_table(
        "part_digests",
        sa.Column("transfer_id", sa.Integer, primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("part_size", sa.BigInteger, nullable=False),
        sa.Column("md5s", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("part_digests")
