"""The pre-pass keeps the CRC64NVMEs too, and which upload was created to carry them.

``part_digests.crc64nvme``: the whole file's CRC64NVME (base64), taken in the
read that gave the SHA-256 and the part MD5s; ``part_crc64nvmes``: each
planned part's, 8 bytes each in part order; ``crc64nvme_upload_id``: the
multipart upload created with ChecksumAlgorithm CRC64NVME (FULL_OBJECT), whose
parts and Complete carry them (another upload of the transfer, one created
before this revision or on an endpoint that does not verify checksums, goes
on with MD5s alone). NULL for digests written before: read again when needed.

Revision ID: j0011
Revises: j0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0011"
down_revision = "j0010"


def upgrade() -> None:
    with op.batch_alter_table("part_digests") as batch:
        batch.add_column(sa.Column("crc64nvme", sa.String(16), nullable=True))
        batch.add_column(sa.Column("part_crc64nvmes", sa.LargeBinary, nullable=True))
        batch.add_column(sa.Column("crc64nvme_upload_id", sa.String(1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("part_digests") as batch:
        batch.drop_column("crc64nvme_upload_id")
        batch.drop_column("part_crc64nvmes")
        batch.drop_column("crc64nvme")
