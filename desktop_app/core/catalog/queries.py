"""The catalog's read-only look-ups: rows, pages of a search, streams, the audit log.

:class:`CatalogQueries` changes nothing. Each answer is one transaction's (or,
for the streams, one server-side cursor's) view, of the rows this login may
see: on PostgreSQL row-level security keeps a user to their own rows, and
what others hold is learnt only through the functions that say no more
(``ferry_key_is_live``, ``ferry_others_live_keys``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Executable, or_, select, text
from sqlalchemy.orm import Session

from desktop_app.core.catalog.records import (
    RECORD_COLUMNS,
    AuditEntry,
    FileQuery,
    FileRecord,
    OutboxEvent,
    aware,
)
from desktop_app.core.catalog.schema import AuditAction, AuditRow, FileRow, FileStatus, OutboxRow
from desktop_app.core.catalog.statements import FILES
from desktop_app.core.catalog.steps import ChangeSteps
from desktop_app.core.catalog.transactions import CatalogTransactions


class CatalogQueries:
    """Read the catalog as this login may see it."""

    def __init__(self, transactions: CatalogTransactions, steps: ChangeSteps) -> None:
        self._transactions = transactions
        self._steps = steps

    @property
    def _dialect(self) -> str:
        return self._steps.dialect

    def database_now(self) -> datetime:
        """The catalog's clock now: what a check measures row ages against."""
        return self._transactions.run("read the database's clock", self._steps.now)

    def get(self, file_id: int) -> FileRecord | None:
        def work(session: Session) -> FileRecord | None:
            row = session.get(FileRow, file_id)
            return FileRecord.from_row(row) if row else None

        return self._transactions.run(f"read row {file_id}", work)

    def live(self, bucket: str, key: str) -> FileRecord | None:
        def work(session: Session) -> FileRecord | None:
            row = self._steps.live_by_key(session, bucket, key)
            return FileRecord.from_row(row) if row else None

        return self._transactions.run(f"look up {key!r}", work)

    def key_is_live(self, bucket: str, key: str) -> bool:
        """Does any live row, whoever's, hold this key? (Nothing else about it.)"""

        def work(session: Session) -> bool:
            steps = self._steps
            return steps.live_by_key(session, bucket, key) is not None or steps.hidden_live_row(
                session, bucket, key
            )

        return self._transactions.run(f"look up {key!r}", work)

    def iter_others_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        """Keys under the prefix that another owner holds, in key byte order.

        Held: their live row is there, or no live row is and the newest row is
        their deletion (their object may still be stored: theirs to clean up,
        never another user's to adopt). Nothing else about those rows: on
        PostgreSQL a normal user learns it through ``ferry_others_live_keys``;
        elsewhere every row is visible (and only live rows are named).
        """
        statement: Executable
        if self._dialect == "postgresql":
            statement = text("SELECT key FROM ferry_others_live_keys(:bucket, :prefix)")
            params = {"bucket": bucket, "prefix": prefix}
        else:
            table = FILES
            statement = (
                select(table.c.key)
                .where(
                    table.c.bucket == bucket,
                    table.c.key.startswith(prefix, autoescape=True),
                    table.c.status != FileStatus.DELETED.value,
                    table.c.owner != self._steps.owner,
                )
                .order_by(table.c.key)
            )
            params = {}
        for (key,) in self._transactions.stream(statement, params, "list the keys others hold"):
            yield str(key)

    def is_admin(self) -> bool:
        """May this login see and repair every owner's rows?"""
        if self._dialect != "postgresql":
            return True
        query = text(
            "SELECT rolsuper OR rolbypassrls OR EXISTS (SELECT 1 FROM pg_roles a "
            "WHERE a.rolname = 'ferry_admin' AND pg_has_role(current_user, a.oid, 'member')) "
            "FROM pg_roles WHERE rolname = current_user"
        )
        return bool(
            self._transactions.run("check the login's role", lambda s: s.execute(query).scalar())
        )

    def search(self, query: FileQuery) -> list[FileRecord]:
        """One page of rows in key byte order; pass the last key as after_key for the next."""
        statement = select(FileRow)
        if query.bucket is not None:
            statement = statement.where(FileRow.bucket == query.bucket)
        if query.owner is not None:
            statement = statement.where(FileRow.owner == query.owner)
        if query.prefix:
            statement = statement.where(FileRow.key.startswith(query.prefix, autoescape=True))
        if query.name_contains:
            statement = statement.where(self._name_matches(query.name_contains))
        if query.status is not None:
            statement = statement.where(FileRow.status == query.status.value)
        if query.since is not None:
            statement = statement.where(FileRow.created_at >= query.since)
        if query.until is not None:
            statement = statement.where(FileRow.created_at < query.until)
        if query.after_key is not None:
            statement = statement.where(FileRow.key > query.after_key)
        statement = statement.order_by(FileRow.key, FileRow.id).limit(query.limit)

        def work(session: Session) -> list[FileRecord]:
            return [FileRecord.from_row(row) for row in session.scalars(statement)]

        return self._transactions.run("search the catalog", work)

    def _name_matches(self, fragment: str) -> ColumnElement[bool]:
        """The file's name or its key (the folders it is under) holds ``fragment`` in any case,
        ``%`` and ``_`` taken as they are (#20: a folder's name finds the files in it).

        Both sides are lowered by the database (PostgreSQL ILIKE; SQLite lower(),
        which folds ASCII letters only, so "É" finds "É" but not "é"). On
        PostgreSQL the key's byte-order collation ("C") would fold ASCII only:
        it is compared in the database's own collation, as the name is.
        """
        key = FileRow.key.collate("default") if self._dialect == "postgresql" else FileRow.key
        return or_(
            FileRow.original_name.icontains(fragment, autoescape=True),
            key.icontains(fragment, autoescape=True),
        )

    def rows_of_versions(
        self, bucket: str, versions: Sequence[tuple[str, str]]
    ) -> list[FileRecord]:
        """The rows (this login may see) that recorded these (key, version id) pairs."""
        if not versions:
            return []
        wanted = set(versions)
        ids = sorted({version for _key, version in versions})

        def work(session: Session) -> list[FileRecord]:
            query = select(*(FILES.c[name] for name in RECORD_COLUMNS)).where(
                FILES.c.bucket == bucket, FILES.c.version_id.in_(ids)
            )
            return [FileRecord.from_columns(values) for values in session.execute(query)]

        found = self._transactions.run("read the rows of stored versions", work)
        return [row for row in found if (row.key, row.version_id) in wanted]

    def iter_in_key_order(self, bucket: str, prefix: str = "") -> Iterator[FileRecord]:
        """Every row (any status) under the prefix, streamed in key byte order.

        Plain rows, not ORM objects, fetched in batches from a server-side
        cursor: memory stays flat and 100,000 rows stream in seconds.
        """
        table = FILES
        statement = (
            select(*(table.c[name] for name in RECORD_COLUMNS))
            .where(table.c.bucket == bucket)
            .where(table.c.key.startswith(prefix, autoescape=True))
            .order_by(table.c.key, table.c.id)
        )
        for row in self._transactions.stream(statement, {}, "list its rows"):
            yield FileRecord.from_columns(row)

    def audit_entries(self, file_id: int | None = None) -> list[AuditEntry]:
        statement = select(AuditRow).order_by(AuditRow.id)
        if file_id is not None:
            statement = statement.where(AuditRow.file_id == file_id)

        def work(session: Session) -> list[AuditEntry]:
            return [
                AuditEntry(
                    aware(r.at),
                    r.actor,
                    AuditAction(r.action),
                    r.file_id,
                    r.bucket,
                    r.key,
                    r.details,
                )
                for r in session.scalars(statement)
            ]

        return self._transactions.run("read the audit log", work)

    def unpublished_events(self, limit: int = 1000) -> list[OutboxEvent]:
        statement = (
            select(OutboxRow)
            .where(OutboxRow.published_at.is_(None), OutboxRow.skipped_reason.is_(None))
            .order_by(OutboxRow.id)
            .limit(limit)
        )

        def work(session: Session) -> list[OutboxEvent]:
            return [OutboxEvent.from_row(r) for r in session.scalars(statement)]

        return self._transactions.run("read the outbox", work)

    def ping(self) -> None:
        self._transactions.run(
            "answer", lambda session: session.execute(text("SELECT 1")).scalar_one()
        )
