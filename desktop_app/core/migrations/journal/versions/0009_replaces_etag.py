"""A transfer knows which object at its key it may write over, if any.

``replaces_etag`` is the ETag of Ferry's own object that an overwrite
replaces, or of the object a person's repair chose to replace; NULL: the key
must hold no object. PUT and Complete carry it as If-Match (or If-None-Match:
*), so Ferry never writes over another program's object. Transfers in flight
at the upgrade get NULL: an overwrite among them is refused as a conflict
rather than written over an object nobody vouched for.

Revision ID: j0009
Revises: j0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0009"
down_revision = "j0008"


def upgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.add_column(sa.Column("replaces_etag", sa.String(80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("replaces_etag")
