"""A transfer knows the version its write made, in a bucket that keeps versions.

``version_id`` is the VersionId the server answered to the PUT, the
multipart Complete or the server-side copy (or the verifying HEAD, when the
write's answer was lost), carried to the catalog row at activation like the
ETag; NULL where the bucket keeps no versions. Transfers in flight at the
upgrade get NULL and take the version from their verifying HEAD, or record
none (their file is then deleted as before: by key, If-Match its ETag).

Revision ID: j0010
Revises: j0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0010"
down_revision = "j0009"


def upgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.add_column(sa.Column("version_id", sa.String(1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("version_id")
