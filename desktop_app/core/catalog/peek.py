"""A look at the catalog's outbox through sqlite3 alone, where nothing can be wrong.

`ferry status` shows how many catalog events wait for a relay. Opening the
catalog for that (:func:`~desktop_app.core.catalog.service.open_catalog`) loads
SQLAlchemy and checks what the database is; for the common case, an SQLite
file that is Ferry's catalog at the newest revision, the same counts are read
here with nothing heavier than sqlite3. Anything else (PostgreSQL, a file
that does not exist yet, an older or foreign database, a read-only disk, any
error) is answered with None: the caller then opens the catalog as before,
which says what is wrong in the same words as always.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from desktop_app.core.db.locks import on_read_only_file_system
from desktop_app.core.db.migrate import Schema
from desktop_app.core.settings.profiles import plain_sqlite_file

# Ferry's mark on a catalog: a one-row table with this format (catalog_db.survey).
MARKER_TABLE = "ferry_catalog"
MARKER_FORMAT = "ferry-catalog"
PENDING = "published_at IS NULL AND skipped_reason IS NULL"
# The backlog's counts on SQLite (EventOutbox.backlog asks the same).
SQLITE_BACKLOG = (
    f"SELECT count(*) FILTER (WHERE {PENDING}) AS waiting, "
    "count(*) FILTER (WHERE skipped_reason IS NOT NULL) AS skipped, "
    f"min(created_at) FILTER (WHERE {PENDING}) AS oldest FROM outbox"
)
_MARKED_REVISION = (
    f"SELECT m.format, v.version_num FROM {MARKER_TABLE} AS m "
    f"CROSS JOIN {Schema.CATALOG.version_table} AS v"
)


@dataclass(frozen=True)
class OutboxBacklog:
    """How the outbox stands: events waiting for a relay, events set aside."""

    waiting: int
    skipped: int
    oldest_waiting: datetime | None


def backlog_of(waiting: int | None, skipped: int | None, oldest: object) -> OutboxBacklog:
    """The backlog from the counts' row (SQLite gives times as text, naive UTC)."""
    if isinstance(oldest, str):
        oldest = datetime.fromisoformat(oldest)
    if isinstance(oldest, datetime) and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return OutboxBacklog(
        int(waiting or 0), int(skipped or 0), oldest if isinstance(oldest, datetime) else None
    )


def sqlite_outbox_backlog(catalog_url: str) -> OutboxBacklog | None:
    """The backlog of a plain SQLite catalog file that is Ferry's at the newest revision;
    None for any other catalog, or when anything about it is not as expected."""
    path = plain_sqlite_file(catalog_url)
    if path is None or not os.path.isfile(path) or on_read_only_file_system(Path(path).parent):
        return None
    try:
        # mode=rw: never creates a file (a new catalog is made by open_catalog).
        connection = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    with contextlib.closing(connection):
        try:
            marked = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MARKER_TABLE,)
            ).fetchall()
            if not marked:
                return None
            found = connection.execute(_MARKED_REVISION).fetchall()
            if len(found) != 1 or tuple(found[0]) != (MARKER_FORMAT, Schema.CATALOG.head):
                return None
            waiting, skipped, oldest = connection.execute(SQLITE_BACKLOG).fetchone()
        except sqlite3.Error:
            return None
    return backlog_of(waiting, skipped, oldest)
