"""Database plumbing shared by the catalog and the journal.

Alembic upgrades to the newest schema (each database has its own numbered
migrations), and the pragmas every SQLite file of Ferry's is opened with.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, event, text


class Schema(enum.Enum):
    CATALOG = ("catalog", "alembic_version")
    JOURNAL = ("journal", "journal_version")

    @property
    def folder(self) -> str:
        return self.value[0]

    @property
    def version_table(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class Revisions:
    current: str | None
    head: str | None

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config(connection: Connection, schema: Schema) -> Config:
    config = Config()
    location = resources.files("desktop_app.core") / "migrations" / schema.folder
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    return config


def revisions(connection: Connection, schema: Schema) -> Revisions:
    head = ScriptDirectory.from_config(_config(connection, schema)).get_current_head()
    context = MigrationContext.configure(connection, opts={"version_table": schema.version_table})
    return Revisions(context.get_current_revision(), head)


_alembic_lock = threading.Lock()
# Any constant: the advisory lock that serialises schema upgrades on PostgreSQL.
_UPGRADE_LOCK = 0x46455252  # "FERR"


def upgrade(connection: Connection, schema: Schema) -> None:
    """Upgrade to head and commit; the caller translates database errors.

    On PostgreSQL two Ferrys opening a new catalog at once would both create
    its tables; a transaction-scoped advisory lock makes the second wait, and
    Alembic, reading the version after the lock, then finds nothing to do.
    """
    # Alembic's command API keeps its context in module globals: one thread at a time.
    with _alembic_lock:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK})
        command.upgrade(_config(connection, schema), "head")
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
    event.listen(engine, "connect", _durable_pragmas)
    return engine
