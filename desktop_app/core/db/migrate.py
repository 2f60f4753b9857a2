"""Database plumbing shared by the catalog and the journal.

Alembic upgrades to the newest schema (each database has its own numbered
migrations), and the pragmas every SQLite file of Ferry's is opened with.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

# SQLAlchemy is imported where it is used: the schemas' names and heads below
# are read by code that loads no SQLAlchemy (catalog_peek, `ferry status`).
if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Connection, Engine


class Schema(enum.Enum):
    """Each database's migrations, version table and newest revision.

    The head is written here so that opening a database that is up to date
    reads one row and imports no Alembic (it costs a quarter of a second at
    every start); a test keeps it equal to the head Alembic finds.
    """

    # The catalog's version table is named as Ferry's own: an application
    # database's ``alembic_version`` is never read or written as the catalog's.
    CATALOG = ("catalog", "ferry_schema_version", "0010")
    JOURNAL = ("journal", "journal_version", "j0012")

    @property
    def folder(self) -> str:
        return self.value[0]

    @property
    def version_table(self) -> str:
        return self.value[1]

    @property
    def head(self) -> str:
        return self.value[2]


@dataclass(frozen=True)
class Revisions:
    current: str | None
    head: str | None

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config(schema: Schema, connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    location = resources.files("desktop_app.core") / "migrations" / schema.folder
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    config.attributes["version_table"] = schema.version_table
    return config


def revisions(connection: Connection, schema: Schema) -> Revisions:
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table(schema.version_table):
        return Revisions(None, schema.head)
    current = connection.execute(
        text(f"SELECT version_num FROM {schema.version_table}")  # a fixed name, not input
    ).scalar_one_or_none()
    return Revisions(current, schema.head)


def alembic_head(schema: Schema) -> str | None:
    """The newest revision among the migration scripts (what :attr:`Schema.head` must say)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(schema)).get_current_head()


_alembic_lock = threading.Lock()
# Any constant: the advisory lock that serialises schema upgrades on PostgreSQL.
_UPGRADE_LOCK = 0x46455252  # "FERR"


def hold_upgrade_lock(connection: Connection) -> None:
    """Wait until no other Ferry is upgrading this PostgreSQL database; hold that until commit.

    What a connection reads after this includes everything a concurrent
    upgrade committed. Without it, two statements of one survey can straddle
    another Ferry's commit: no marker in the first, all of its tables in the
    second. SQLite reads one snapshot per transaction and needs no lock.
    """
    if connection.dialect.name == "postgresql":
        from sqlalchemy import text

        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK})


def upgrade(
    connection: Connection,
    schema: Schema,
    first: Callable[[Connection], None] | None = None,
) -> None:
    """Upgrade to head and commit; the caller translates database errors.

    On PostgreSQL two Ferrys opening a new catalog at once would both create
    its tables; a transaction-scoped advisory lock makes the second wait, and
    Alembic, reading the version after the lock, then finds nothing to do.
    ``first`` runs under that lock, in the same transaction, before Alembic
    (the catalog moves an older version table there).
    """
    # Alembic's command API keeps its context in module globals: one thread at a time.
    with _alembic_lock:
        hold_upgrade_lock(connection)
        if first is not None:
            first(connection)
        from alembic import command

        command.upgrade(_config(schema, connection), "head")
        connection.commit()


def _durable_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # a committed fact survives a power cut
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_sqlite_durable(engine: Engine) -> Engine:
    """Open every connection of this SQLite engine in WAL mode with synchronous=FULL."""
    from sqlalchemy import event

    event.listen(engine, "connect", _durable_pragmas)
    return engine
