"""Row-level security on PostgreSQL: users see and change only their own rows.

A login that is a member of role ``ferry_admin`` sees and repairs every row.
The roles themselves are cluster-wide and made by an administrator with
``desktop_app/core/sql/postgres_roles.sql``; the policies below do not need
them to exist. On SQLite (one person, one file) this revision does nothing.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"

IS_ADMIN = (
    "EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'ferry_admin' "
    "AND pg_has_role(current_user, r.oid, 'member'))"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE files ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY files_owner ON files "
        f"USING (owner = current_user OR {IS_ADMIN}) "
        f"WITH CHECK (owner = current_user OR {IS_ADMIN})"
    )
    op.execute("ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY audit_read ON audit_log FOR SELECT "
        f"USING (actor = current_user OR {IS_ADMIN})"
    )
    op.execute(
        "CREATE POLICY audit_write ON audit_log FOR INSERT WITH CHECK (actor = current_user)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP POLICY IF EXISTS audit_write ON audit_log")
    op.execute("DROP POLICY IF EXISTS audit_read ON audit_log")
    op.execute("ALTER TABLE audit_log DISABLE ROW LEVEL SECURITY")
    op.execute("DROP POLICY IF EXISTS files_owner ON files")
    op.execute("ALTER TABLE files DISABLE ROW LEVEL SECURITY")
