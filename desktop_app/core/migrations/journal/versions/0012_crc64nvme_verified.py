"""The journal remembers that the server's CRC64NVME was read back equal to Ferry's.

``part_digests.crc64nvme_verified``: set by the verifying HEAD of the upload
named in ``crc64nvme_upload_id`` (j0011), so that a registration resumed
after a crash still records the checksum in the catalog. NULL (not verified)
for digests written before.

Revision ID: j0012
Revises: j0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0012"
down_revision = "j0011"


def upgrade() -> None:
    with op.batch_alter_table("part_digests") as batch:
        batch.add_column(sa.Column("crc64nvme_verified", sa.Boolean, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("part_digests") as batch:
        batch.drop_column("crc64nvme_verified")
