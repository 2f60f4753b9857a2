"""The marker that says a database is Ferry's catalog.

- ``ferry_catalog``: one row, its format (``ferry-catalog``), a random id of
  this catalog and when it was made (the database's clock). Ferry reads it
  before it touches anything: a database with other tables and no marker is
  someone else's, and Ferry leaves it alone (see ``catalog_db.survey``).
- On PostgreSQL the team roles (``postgres_roles.sql``) read it and the
  version table; where those roles exist already they are granted that here,
  so a team catalog upgraded in place stays readable by its users.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

_GRANT_TO_EXISTING_ROLES = """
DO $$
DECLARE
  role_name text;
BEGIN
  FOREACH role_name IN ARRAY ARRAY['ferry_user', 'ferry_relay'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
      EXECUTE format('GRANT SELECT ON ferry_catalog, ferry_schema_version TO %I', role_name);
    END IF;
  END LOOP;
END
$$;
"""


def upgrade() -> None:
    marker = op.create_table(
        "ferry_catalog",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("catalog_id", sa.String(32), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.CheckConstraint("id = 1", name="ck_ferry_catalog_one_row"),
        sa.PrimaryKeyConstraint("id", name="pk_ferry_catalog"),
    )
    op.bulk_insert(marker, [{"id": 1, "format": "ferry-catalog", "catalog_id": uuid.uuid4().hex}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_GRANT_TO_EXISTING_ROLES)


def downgrade() -> None:
    op.drop_table("ferry_catalog")
