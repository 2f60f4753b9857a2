"""Connecting to a catalog database and saying plainly what went wrong.

The engine's settings (SQLite durability, PostgreSQL's small pool and no
server-side prepared statements, so PgBouncer in transaction mode works) and
the one place SQLAlchemy errors become Ferry's :class:`CatalogError` family.

Ferry changes only a database it knows as its catalog: :func:`survey` reads
what a database holds (table names, Ferry's marker, a version row) before
anything is written, and :func:`bring_up_to_date` refuses another
application's database and Ferry's own journal, initialises an empty one,
and upgrades an older catalog only when the caller may migrate.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from desktop_app.core.catalog.peek import MARKER_FORMAT as MARKER_FORMAT
from desktop_app.core.catalog.peek import MARKER_TABLE as MARKER_TABLE
from desktop_app.core.db import migrate
from desktop_app.core.db.locks import on_read_only_file_system
from desktop_app.core.db.migrate import Schema
from desktop_app.core.model.errors import CatalogAccessError, CatalogError, ErrorCause

POOL_SIZE = 1
POOL_OVERFLOW = 1


def create_catalog_engine(url: str, password: str | None = None) -> Engine:
    parsed: URL = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if password and parsed.get_backend_name() != "sqlite":
        # An SQLite file has no password (PGPASSWORD may be set for other work).
        parsed = parsed.set(password=password)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CatalogError(
                    f"The catalog file {parsed.database} cannot be created: {folder} is not "
                    f"a folder Ferry can write ({exc.strerror}). Fix the catalog URL of the "
                    "profile (or FERRY_CATALOG_URL).",
                    title="Catalog path impossible",
                    cause=ErrorCause.OTHER,
                ) from exc
            if on_read_only_file_system(folder):
                # SQLite in WAL mode writes beside the file even to read: say why now,
                # not "unable to open database file" later.
                raise CatalogError(
                    f"The folder {folder} is on a read-only file system, so Ferry cannot "
                    f"open its catalog {Path(parsed.database).name} there. Remount the disk "
                    "read-write, or set FERRY_HOME (or the profile's catalog URL) to a folder "
                    "on a writable disk.",
                    title="Catalog folder is read-only",
                    cause=ErrorCause.OTHER,
                    halts=True,
                )
        engine = create_engine(parsed, connect_args={"timeout": 30})
        migrate.make_sqlite_durable(engine)
        return engine
    # Two connections at most per client (one streams a check while the other
    # writes), so a team of 100 fits in a few hundred server connections or
    # behind PgBouncer. No server-side prepared statements: PgBouncer in
    # transaction mode (before 1.21) cannot route them.
    return create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        pool_timeout=120,
        pool_recycle=1800,
        connect_args={"connect_timeout": 10, "prepare_threshold": None},
    )


def describe_url(url: str) -> str:
    """The catalog URL with any password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


class DatabaseFault(enum.Enum):
    """What a database error means for the person, read from its code, not its text."""

    REFUSED = "refused"  # no right to do it (privileges, row-level security, read-only)
    DISK_FULL = "disk_full"
    UNREACHABLE = "unreachable"  # connection lost or refused, server shutting down, busy
    OTHER = "other"


# PostgreSQL SQLSTATEs (Appendix A). 42501 covers "permission denied", "must be
# owner" and a row refused by row-level security; 25006 a read-only transaction.
_PG_REFUSED = frozenset({"42501", "25006"})
_PG_DISK_FULL = frozenset({"53100"})
# Classes 08 (connection), 57P (operator intervention), 53300 (too many connections).
_PG_UNREACHABLE_PREFIXES = ("08", "57P")
_PG_UNREACHABLE = frozenset({"53300"})
# SQLite primary result codes (the low byte of an extended code).
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_AUTH = 10, 13, 14, 23


def classify_db_error(original: object) -> DatabaseFault:
    """The driver's own code for an error: psycopg's ``sqlstate``, sqlite3's
    ``sqlite_errorcode``. English text changes with the server's language; codes
    do not."""
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate in _PG_REFUSED:
            return DatabaseFault.REFUSED
        if sqlstate in _PG_DISK_FULL:
            return DatabaseFault.DISK_FULL
        if sqlstate in _PG_UNREACHABLE or sqlstate.startswith(_PG_UNREACHABLE_PREFIXES):
            return DatabaseFault.UNREACHABLE
        return DatabaseFault.OTHER
    code = getattr(original, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF
        if primary in (_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_AUTH):
            return DatabaseFault.REFUSED
        if primary == _SQLITE_FULL:
            return DatabaseFault.DISK_FULL
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CANTOPEN, _SQLITE_IOERR):
            return DatabaseFault.UNREACHABLE
    return DatabaseFault.OTHER


def translate_db_error(exc: SQLAlchemyError, action: str) -> CatalogError:
    """Turn a SQLAlchemy error into a CatalogError a person can act on."""
    original = getattr(exc, "orig", None)
    detail = str(original or exc).strip().splitlines()[0][:300] if (original or exc) else ""
    fault = classify_db_error(original)
    if fault is DatabaseFault.REFUSED:
        return CatalogAccessError(
            f"The catalog refused to {action}: {detail}. Ask the catalog's administrator "
            "for the needed rights."
        )
    if fault is DatabaseFault.DISK_FULL:
        return CatalogError(
            f"The catalog could not {action}: its disk is full. Free some space there; "
            "nothing is lost, and `ferry resume` goes on once space is free.",
            title="Disk full",
            cause=ErrorCause.OTHER,
            halts=True,
        )
    if (
        fault is DatabaseFault.UNREACHABLE
        or isinstance(exc, OperationalError)
        or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
    ):
        return CatalogError(
            f"The catalog could not {action}: {detail}. Check that the database is reachable "
            "(and not locked by another program).",
            transient=True,
            title="Catalog unreachable",
            cause=ErrorCause.NETWORK,
        )
    return CatalogError(f"The catalog could not {action}: {detail}.")


# -- whose database is this --------------------------------------------------

# Ferry's catalogs kept their version in Alembic's default table until the
# marker (revision 0007); one is known by a version row among these ids and
# Ferry's three tables with their columns. Another application's
# alembic_version may hold the same ids: the tables tell them apart.
LEGACY_VERSION_TABLE = "alembic_version"
PRE_MARKER_REVISIONS = frozenset({"0001", "0002", "0003", "0004", "0005", "0006"})
_FERRY_COLUMNS = {
    "files": {"id", "bucket", "key", "owner", "original_name", "size", "sha256", "etag",
              "content_type", "status", "created_at", "uploaded_at", "deleted_at",
              "deleted_by", "last_error"},
    "audit_log": {"id", "at", "actor", "action", "file_id", "bucket", "key", "details"},
    "outbox": {"id", "event_type", "payload", "created_at", "published_at"},
}  # fmt: skip


class CatalogMode(enum.Enum):
    """What opening the catalog may do to its schema."""

    # Reads only: an older catalog is refused with "run `ferry catalog
    # upgrade`" and left as it is. An empty database is still initialised
    # (nothing in it can be altered), so a new install's first `ferry status` works.
    READ_ONLY = "read-only"
    # A command that writes: an older Ferry catalog is upgraded in place.
    MAY_MIGRATE = "may-migrate"


class Found(enum.Enum):
    """What a database holds, as far as Ferry is concerned."""

    EMPTY = "empty"  # no table or view: Ferry may make its catalog here
    FERRY = "ferry"  # Ferry's marker
    PRE_MARKER = "pre-marker"  # a Ferry catalog from before the marker
    JOURNAL = "journal"  # Ferry's local journal, never a catalog
    FOREIGN = "foreign"  # another application's tables: left alone


@dataclass(frozen=True)
class Survey:
    found: Found
    tables: tuple[str, ...]
    # Ferry's schema revision (FERRY, PRE_MARKER) or another application's
    # alembic_version (FOREIGN); and the table it was read from.
    revision: str | None = None
    version_table: str | None = None


def survey(connection: Connection) -> Survey:
    """Read what the database holds; writes nothing.

    On PostgreSQL the tables are those of the connection's schema (the first
    of its search_path), where Ferry would make its own.
    """
    inspector = inspect(connection)
    # The common case first, in two short queries as before the marker: a
    # full listing of a PostgreSQL schema costs tens of milliseconds.
    if inspector.has_table(MARKER_TABLE):
        marked = _marked_revision(connection)
        if marked is not None:
            return Survey(Found.FERRY, (), marked, Schema.CATALOG.version_table)
    tables = tuple(sorted({*inspector.get_table_names(), *inspector.get_view_names()}))
    if not tables:
        return Survey(Found.EMPTY, tables)
    if Schema.JOURNAL.version_table in tables:
        return Survey(Found.JOURNAL, tables)
    for table in (Schema.CATALOG.version_table, LEGACY_VERSION_TABLE):
        version = _single_version(connection, table) if table in tables else None
        if version is None:
            continue
        if version in PRE_MARKER_REVISIONS and _has_ferry_columns(connection):
            return Survey(Found.PRE_MARKER, tables, version, table)
        return Survey(Found.FOREIGN, tables, version, table)
    return Survey(Found.FOREIGN, tables)


def _columns(connection: Connection, table: str) -> set[str]:
    return {column["name"] for column in inspect(connection).get_columns(table)}


def _marked_revision(connection: Connection) -> str | None:
    """The revision of a catalog whose marker is Ferry's; None for any other ``ferry_catalog``.

    Migration 0007 writes the marker into a database that has the version
    table already, so a marked catalog has both.
    """
    found = connection.execute(
        text(  # fixed names, not input
            f"SELECT m.format, v.version_num FROM {MARKER_TABLE} AS m "
            f"CROSS JOIN {Schema.CATALOG.version_table} AS v"
        )
    ).all()
    if len(found) == 1 and found[0][0] == MARKER_FORMAT:
        return str(found[0][1])
    return None


def _single_version(connection: Connection, table: str) -> str | None:
    """The one version row of an Alembic version table (a fixed name, not input)."""
    if "version_num" not in _columns(connection, table):
        return None
    found = connection.execute(text(f"SELECT version_num FROM {table}")).scalars().all()
    return str(found[0]) if len(found) == 1 else None


def _has_ferry_columns(connection: Connection) -> bool:
    names = set(inspect(connection).get_table_names())
    return all(
        table in names and columns <= _columns(connection, table)
        for table, columns in _FERRY_COLUMNS.items()
    )


def bring_up_to_date(connection: Connection, where: str, mode: CatalogMode) -> None:
    """Make the database at ``where`` Ferry's current catalog, or refuse it.

    Nothing is written to a database that is not Ferry's: another
    application's tables, or Ferry's journal, are refused before any change.
    """
    found = survey(connection)
    if found.found is not Found.FERRY or found.revision != Schema.CATALOG.head:
        # Judge what is there only once no other Ferry is half-way through making it.
        migrate.hold_upgrade_lock(connection)
        found = survey(connection)
    if found.found is Found.JOURNAL:
        raise _journal_refused(where)
    if found.found is Found.FOREIGN:
        raise _foreign_refused(where, found)
    if found.found is Found.FERRY and found.revision == Schema.CATALOG.head:
        return
    if found.found is not Found.EMPTY and mode is CatalogMode.READ_ONLY:
        raise CatalogError(
            f"The catalog at {where} is at schema revision {found.revision or 'none'} and "
            f"this Ferry needs {Schema.CATALOG.head}; a command that only reads leaves it as "
            "it is. The catalog needs an upgrade: run `ferry catalog upgrade` (or any "
            "command that writes, such as `ferry upload`).",
            title="Catalog needs an upgrade",
            cause=ErrorCause.OTHER,
        )
    try:
        migrate.upgrade(connection, Schema.CATALOG, first=_move_legacy_version)
    except SQLAlchemyError as exc:
        error = translate_db_error(exc, "upgrade its schema")
        if isinstance(error, CatalogAccessError):
            raise CatalogAccessError(
                f"The catalog at {where} is at schema revision "
                f"{found.revision or 'none'} and Ferry needs {Schema.CATALOG.head}, "
                "but this login may not upgrade it. Ask its administrator "
                "to run `ferry catalog upgrade`."
            ) from exc
        raise error from exc


def _move_legacy_version(connection: Connection) -> None:
    """A catalog from before the marker keeps its version in Ferry's own table from now on.

    Run under the upgrade lock: a second Ferry that waited finds it moved.
    """
    found = survey(connection)
    if found.found is Found.PRE_MARKER and found.version_table == LEGACY_VERSION_TABLE:
        # A rename keeps the row and, on PostgreSQL, the grants the team roles have on it.
        connection.execute(
            text(f"ALTER TABLE {LEGACY_VERSION_TABLE} RENAME TO {Schema.CATALOG.version_table}")
        )


def _foreign_refused(where: str, found: Survey) -> CatalogError:
    shown = ", ".join(found.tables[:5]) + (
        f" and {len(found.tables) - 5} more" if len(found.tables) > 5 else ""
    )
    version = (
        f" (its {found.version_table} is at {found.revision})" if found.revision is not None else ""
    )
    return CatalogError(
        f"The database at {where} holds tables that are not Ferry's: {shown}{version}, and no "
        "Ferry catalog marker. Ferry changed nothing in it. Point FERRY_CATALOG_URL (or the "
        "profile's catalog URL) at an empty database or PostgreSQL schema of Ferry's own.",
        title="Not a Ferry catalog",
        cause=ErrorCause.OTHER,
    )


def _journal_refused(where: str) -> CatalogError:
    return CatalogError(
        f"The catalog URL points at Ferry's journal ({where}), the local file of its "
        "transfers; the catalog must be a database of its own, and Ferry changed nothing in "
        "the journal. Point FERRY_CATALOG_URL (or the profile's catalog URL) at another file "
        "or database, or leave it unset for the default catalog.",
        title="The journal is not a catalog",
        cause=ErrorCause.OTHER,
    )


def refuse_journal_file(url: str, journal_file: Path) -> None:
    """Refuse an SQLite catalog URL naming the journal file, before either is opened.

    The journal is recognised by its tables as well (:func:`survey`); this
    catches a journal that does not exist yet, which would otherwise be
    created with the catalog's tables in it.
    """
    database = make_url(url).database
    if make_url(url).get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    catalog = Path(database)
    same = catalog.resolve() == journal_file.resolve() or (
        catalog.exists() and journal_file.exists() and os.path.samefile(catalog, journal_file)
    )
    if same:
        raise _journal_refused(str(journal_file))
