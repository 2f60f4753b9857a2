"""The catalog's prepared statements: the table handles and the SQL the upload path runs.

Built once at import, shared by every module that changes or reads rows
(:mod:`steps`, :mod:`reservations`, :mod:`queries`). Core, not ORM: these run
once or twice for every file uploaded. Nothing here touches a connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Executable, Table, and_, bindparam, insert, or_, select, text, union, update
from sqlalchemy.dialects import postgresql, sqlite

from desktop_app.core.catalog.records import RECORD_COLUMNS, FileRecord
from desktop_app.core.catalog.schema import AuditRow, FileRow, FileStatus, OutboxRow
from desktop_app.core.model.errors import NotInCatalogError

FILES = cast(Table, FileRow.__table__)
AUDIT = cast(Table, AuditRow.__table__)
OUTBOX = cast(Table, OutboxRow.__table__)
AUDIT_CALL = text("SELECT ferry_audit(:file_id, :bucket, :key, :action, CAST(:details AS json))")
ANNOUNCE_CALL = text("SELECT ferry_announce(:file_id, :event)")
KEY_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))")
TAKE_WRITE_LOCK = text("UPDATE files SET id = id WHERE 0 = 1")
# The transaction's start on the database server's clock.
DATABASE_NOW = text("SELECT now()")
# A row's record and its reserving transfer's token (not part of the record).
COLUMNS_AND_TOKEN = [*(FILES.c[name] for name in RECORD_COLUMNS), FILES.c.token]


LIVE = FILES.c.status != FileStatus.DELETED.value
LIVE_AT_KEY = select(*COLUMNS_AND_TOKEN).where(
    FILES.c.bucket == bindparam("bucket"), LIVE, FILES.c.key == bindparam("key")
)


def _reservation_lookup() -> Executable:
    """The rows a reservation decides by: this content of ours, and this key's holder.

    A UNION of two index look-ups, in one statement (one snapshot): written
    as one WHERE with an OR, SQLite read every row of the bucket for each
    reservation (O(n) per file; a catalog of 12,000 rows already slowed small
    uploads by half). Core, not ORM: it runs for every file uploaded.
    """
    live = and_(FILES.c.bucket == bindparam("bucket"), FILES.c.status != FileStatus.DELETED.value)
    same_content = select(*COLUMNS_AND_TOKEN).where(
        live,
        FILES.c.owner == bindparam("owner"),
        FILES.c.sha256 == bindparam("sha256"),
        # Content stored at another server is no duplicate.
        or_(FILES.c.endpoint == bindparam("endpoint"), FILES.c.endpoint.is_(None)),
    )
    return union(same_content, LIVE_AT_KEY)


RESERVATION_LOOKUP = _reservation_lookup()
# The columns set are the parameters given (besides file_id).
UPDATE_ROW = update(FILES).where(FILES.c.id == bindparam("file_id"))
# A reservation's new row and its id; no row where a unique index holds another
# (the key taken by a row this login may not see, or this content being sent by
# another upload): a refused INSERT would end a PostgreSQL transaction that other
# uploads share, and each of them would be written again alone.
INSERT_PENDING: dict[str, Executable] = {
    "postgresql": postgresql.insert(FILES).on_conflict_do_nothing().returning(FILES.c.id),
    "sqlite": sqlite.insert(FILES).on_conflict_do_nothing().returning(FILES.c.id),
}
INSERT_AUDIT = insert(AUDIT)
INSERT_OUTBOX = insert(OUTBOX)
ROW_FOR_UPDATE = (
    select(*COLUMNS_AND_TOKEN, FILES.c.replaces_id)
    .where(FILES.c.id == bindparam("file_id"))
    .with_for_update()
)
ROW_BY_ID = select(*COLUMNS_AND_TOKEN).where(FILES.c.id == bindparam("file_id"))


def with_token(values: Sequence[Any]) -> tuple[FileRecord, str | None]:
    """A row read with :data:`COLUMNS_AND_TOKEN`: its record and its reservation token."""
    return FileRecord.from_columns(values[:-1]), values[-1]


def no_row(file_id: int) -> NotInCatalogError:
    return NotInCatalogError(f"Catalog row {file_id} does not exist (or is not yours).")
