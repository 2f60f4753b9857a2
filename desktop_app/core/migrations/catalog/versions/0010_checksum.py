"""A file row records the checksum the server verified, and its type.

``files.checksum``: the object's full-object checksum as the server answered
it (base64), where Ferry's write carried one the server verified and read
back equal to the one Ferry computed from the bytes it sent;
``files.checksum_type``: its algorithm ("CRC64NVME", a full-object checksum).
NULL for rows written before this revision, for objects written where the
endpoint keeps no checksums (the MD5 path), and for copies and adoptions.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("checksum", sa.String(128), nullable=True))
        batch.add_column(sa.Column("checksum_type", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("checksum_type")
        batch.drop_column("checksum")
