"""Which S3 endpoint a row's object lives at.

- ``files.endpoint``: the endpoint the object was stored at (``aws`` for AWS
  S3, else the endpoint URL). Two servers may each have a bucket of the same
  name: content found under the other endpoint is never taken as a duplicate,
  and a key held by the other endpoint's row is a conflict, not "stored".
  Rows from before this revision have none (unknown): they are trusted as
  before, and a duplicate is confirmed by a HEAD of its object anyway.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("endpoint", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("endpoint")
