"""A file row records the version of the object Ferry wrote.

``files.version_id``: in a bucket that keeps versions, the VersionId the
server gave Ferry's write (NULL where it keeps none, and for rows written
before this revision). `ferry delete` removes exactly that version, so no
noncurrent copy of the bytes stays behind a delete marker, and the check
finds that version among the bucket's versions ("deleted, still stored").
Looked up by bucket and version, for the check's batches of versions.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("version_id", sa.String(1024), nullable=True))
    op.create_index("ix_files_bucket_version_id", "files", ["bucket", "version_id"])


def downgrade() -> None:
    op.drop_index("ix_files_bucket_version_id", "files")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("version_id")
