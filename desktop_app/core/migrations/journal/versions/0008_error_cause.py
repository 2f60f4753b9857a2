"""A failed transfer's and attempt's error keep their cause, a stable code.

The Failed inbox grouped errors, and the engine recognised a repeated
verification failure, by the error's title: rewording a message regrouped
them. The cause is now set where an error is raised and stored here. Rows
written before get theirs once, below, from their kind and title as Ferry
read them until now; a title not in that table gives "other".

Revision ID: j0008
Revises: j0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0008"
down_revision = "j0007"

# The kinds that were always the file's, whatever the title.
_FILE_KINDS = ("input", "source_changed", "final")
# The titles Ferry grouped by until this revision (failures._BY_TITLE), and
# the one the engine recognised a failed verification by. Frozen here: they
# are what old rows say, not what Ferry says now.
_BY_TITLE = {
    "Credentials refused": "credentials",
    "No credentials": "credentials",
    "Sign-in needed": "credentials",
    "Proxy sign-in needed": "credentials",
    "Access denied": "credentials",
    "Not allowed": "credentials",
    "Not allowed by the catalog": "credentials",
    "Keyring problem": "credentials",
    "Storage unreachable": "network",
    "Catalog unreachable": "network",
    "Storage problem": "server",
    "Not supported by the server": "server",
    "No such bucket": "server",
    "Catalog problem": "server",
    "Key already taken": "conflict",
    "Reserved by another upload": "conflict",
    "Same content in flight": "conflict",
    "Changed meanwhile": "conflict",
    "Another profile's transfer": "conflict",
    "Verification failed": "verification",
}
_TABLES = ("transfers", "attempts")


def _derived_cause(table: sa.TableClause) -> sa.ColumnElement[str]:
    return sa.case(
        (table.c.error_kind.in_(_FILE_KINDS), "file"),
        *((table.c.error_title == title, cause) for title, cause in _BY_TITLE.items()),
        else_="other",
    )


def upgrade() -> None:
    for name in _TABLES:
        with op.batch_alter_table(name) as batch:
            batch.add_column(sa.Column("error_cause", sa.String(32), nullable=True))
        table = sa.table(
            name,
            sa.column("error_kind", sa.String),
            sa.column("error_title", sa.Text),
            sa.column("error_message", sa.Text),
            sa.column("error_cause", sa.String),
        )
        # An error is a row with a message (as the journal reads it); the others keep NULL.
        op.execute(
            table.update()
            .where(table.c.error_message.is_not(None), table.c.error_message != "")
            .values(error_cause=_derived_cause(table))
        )


def downgrade() -> None:
    for name in _TABLES:
        with op.batch_alter_table(name) as batch:
            batch.drop_column("error_cause")
