"""Connecting to a catalog database and saying plainly what went wrong.

The engine's settings (SQLite durability, PostgreSQL's small pool and no
server-side prepared statements, so PgBouncer in transaction mode works) and
the one place SQLAlchemy errors become Ferry's :class:`CatalogError` family.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from desktop_app.core import migrate
from desktop_app.core.errors import CatalogAccessError, CatalogError
from desktop_app.core.locks import on_read_only_file_system

POOL_SIZE = 1
POOL_OVERFLOW = 1


def create_catalog_engine(url: str, password: str | None = None) -> Engine:
    parsed: URL = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if password:
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
                ) from None
            if on_read_only_file_system(folder):
                # SQLite in WAL mode writes beside the file even to read: say why now,
                # not "unable to open database file" later.
                raise CatalogError(
                    f"The folder {folder} is on a read-only file system, so Ferry cannot "
                    f"open its catalog {Path(parsed.database).name} there. Remount the disk "
                    "read-write, or set FERRY_HOME (or the profile's catalog URL) to a folder "
                    "on a writable disk.",
                    title="Catalog folder is read-only",
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


def translate_db_error(exc: SQLAlchemyError, action: str) -> CatalogError:
    """Turn a SQLAlchemy error into a CatalogError a person can act on."""
    original = getattr(exc, "orig", None)
    detail = str(original or exc).strip().splitlines()[0][:300] if (original or exc) else ""
    lowered = detail.lower()
    if any(
        m in lowered
        for m in ("permission denied", "row-level security", "readonly", "must be owner")
    ):
        return CatalogAccessError(
            f"The catalog refused to {action}: {detail}. Ask the catalog's administrator "
            "for the needed rights."
        )
    if "disk is full" in lowered or "no space left" in lowered:
        return CatalogError(
            f"The catalog could not {action}: its disk is full. Free some space there; "
            "nothing is lost, and `ferry resume` goes on once space is free.",
            title="Disk full",
            halts=True,
        )
    if isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return CatalogError(
            f"The catalog could not {action}: {detail}. Check that the database is reachable "
            "(and not locked by another program).",
            transient=True,
            title="Catalog unreachable",
        )
    return CatalogError(f"The catalog could not {action}: {detail}.")
