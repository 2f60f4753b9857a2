"""The steps every catalog change takes inside its caller's transaction.

:class:`ChangeSteps` is the one interface the service's operations and a
repair's :class:`~desktop_app.core.catalog.repair.KeyRepair` both write
through: the audit entry and the outbox event of a change (so a change and
its announcement exist together or not at all), the lock that serialises
changes to one key, the one clock rows record, and the look-ups a change
decides by. None of these opens or ends a transaction: each runs in the one
it is given.

Owners: on PostgreSQL the owner is the catalog login (``current_user``) and
row-level security keeps users to their own rows; on SQLite it is the
profile's user name.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from desktop_app.core.catalog.batch import ChangeBatch, write_entry
from desktop_app.core.catalog.records import FileRecord, UploadIntent, aware
from desktop_app.core.catalog.schema import AuditAction, FileRow, FileStatus, OutboxEventType
from desktop_app.core.catalog.statements import (
    ANNOUNCE_CALL,
    AUDIT_CALL,
    DATABASE_NOW,
    INSERT_AUDIT,
    INSERT_OUTBOX,
    KEY_LOCK,
    TAKE_WRITE_LOCK,
    UPDATE_ROW,
    no_row,
)


def _connection_of(transaction: Session | Connection, row: object) -> Connection:
    """The connection to write through; an ORM row's pending changes go first."""
    if isinstance(transaction, Connection):
        return transaction
    if isinstance(row, FileRow):
        transaction.flush()
    return transaction.connection()


class ChangeSteps:
    """A change's steps for one login (``owner``) on one database (``dialect``)."""

    def __init__(self, dialect: str, *, owner: str, clock: Callable[[], datetime]) -> None:
        self.dialect = dialect
        self.owner = owner
        self.clock = clock

    def audit(
        self,
        transaction: Session | Connection,
        action: AuditAction,
        row: FileRow | FileRecord | None,
        details: dict[str, Any] | None = None,
        *,
        bucket: str = "",
        key: str = "",
    ) -> None:
        """One audit entry in the caller's transaction, about a row or (None) a bare key.

        On PostgreSQL through ``ferry_audit``: users cannot write the log
        themselves, and the function takes bucket and key from the row.
        """
        connection = _connection_of(transaction, row)
        if row is not None:
            bucket, key = row.bucket, row.key
        file_id = row.id if row is not None else None
        if self.dialect == "postgresql":
            write_entry(
                connection,
                AUDIT_CALL,
                {
                    "file_id": file_id,
                    "bucket": bucket,
                    "key": key,
                    "action": action.value,
                    "details": json.dumps(details or {}),
                },
            )
            return
        write_entry(
            connection,
            INSERT_AUDIT,
            {
                "at": self.clock(),
                "actor": self.owner,
                "action": action.value,
                "file_id": file_id,
                "bucket": bucket,
                "key": key,
                "details": details or {},
            },
        )

    def announce(
        self,
        transaction: Session | Connection,
        event_type: OutboxEventType,
        row: FileRow | FileRecord,
    ) -> None:
        """The outbox event for a row's change, in the caller's transaction.

        On PostgreSQL through ``ferry_announce``, which builds the payload from
        the row and refuses an event the row's state does not support.
        """
        connection = _connection_of(transaction, row)
        if isinstance(row, FileRow):
            row = FileRecord.from_row(row)
        if self.dialect == "postgresql":
            write_entry(connection, ANNOUNCE_CALL, {"file_id": row.id, "event": event_type.value})
            return
        payload = {
            "file_id": row.id,
            "bucket": row.bucket,
            "key": row.key,
            "owner": row.owner,
            "size": row.size,
            "sha256": row.sha256,
            "etag": row.etag,
            "status": row.status.value,
            "copied_from": row.copied_from,
        }
        write_entry(
            connection,
            INSERT_OUTBOX,
            {
                "event_type": event_type.value,
                "owner": row.owner,
                "payload": payload,
                "created_at": self.clock(),
                "published_at": None,
            },
        )

    def lock_key(self, transaction: Session | Connection, bucket: str, key: str) -> None:
        """Serialise every change to one key with a repair acting on it.

        PostgreSQL: a transaction-scoped advisory lock on the key (rows that do
        not exist yet cannot be locked). SQLite: taking the file's write lock
        now, which every other writer waits for.
        """
        if self.dialect == "postgresql":
            transaction.execute(KEY_LOCK, {"name": f"{bucket}/{key}"})
        else:
            self.take_write_lock(transaction)

    def take_write_lock(self, transaction: Session | Connection) -> None:
        """SQLite: hold the file's write lock from here to the commit; elsewhere nothing.

        Once per transaction: sqlite3 begins one only before a write, so a
        transaction already begun holds the lock (the later requests of a
        group commit find it so, and skip a statement each).
        """
        if self.dialect == "postgresql":
            return
        connection = (
            transaction if isinstance(transaction, Connection) else transaction.connection()
        )
        if not connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
            transaction.execute(TAKE_WRITE_LOCK)

    def now(self, transaction: Session | Connection) -> datetime:
        """The time a row records, on the one clock every client and check shares.

        PostgreSQL: the server's (a team's laptops' clocks may be minutes
        apart, and liveness and grace compare times written by different
        ones). An SQLite catalog is one computer's file: that computer's clock.
        """
        if self.dialect != "postgresql":
            return self.clock()
        batch = ChangeBatch.of(transaction) if isinstance(transaction, Connection) else None
        if batch is not None and batch.now is not None:
            return batch.now
        now = aware(transaction.execute(DATABASE_NOW).scalar_one())
        if batch is not None:
            batch.now = now
        return now

    @staticmethod
    def new_row_values(
        intent: UploadIntent,
        status: FileStatus,
        *,
        owner: str,
        now: datetime,
        etag: str | None = None,
    ) -> dict[str, Any]:
        """The columns of a new row for this intent (those not named stay NULL)."""
        return {
            "bucket": intent.bucket,
            "key": intent.key,
            "owner": owner,
            "original_name": intent.original_name,
            "size": intent.size,
            "sha256": intent.sha256,
            "etag": etag,
            "content_type": intent.content_type,
            "status": status.value,
            "endpoint": intent.endpoint,
            "created_at": now,
            "uploaded_at": now if status is FileStatus.ACTIVE else None,
        }

    def new_row(
        self,
        session: Session,
        intent: UploadIntent,
        status: FileStatus,
        *,
        owner: str,
        etag: str | None = None,
    ) -> FileRow:
        """A new ORM row for this intent (not yet added to the session)."""
        now = self.now(session)
        return FileRow(**self.new_row_values(intent, status, owner=owner, now=now, etag=etag))

    @staticmethod
    def change(
        connection: Connection, row: FileRecord, *, token: str | None, **changes: Any
    ) -> FileRecord:
        """Set these fields of the row and its reservation token; the record as it now stands.

        ``changes`` are :class:`FileRecord` fields with their record values
        (a status is a :class:`FileStatus`).
        """
        columns = {
            name: value.value if isinstance(value, FileStatus) else value
            for name, value in changes.items()
        }
        connection.execute(UPDATE_ROW, {"file_id": row.id, "token": token, **columns})
        fields: dict[str, Any] = {
            name: aware(value) if isinstance(value, datetime) else value
            for name, value in changes.items()
        }
        return dataclasses.replace(row, **fields)

    @staticmethod
    def require(session: Session, file_id: int) -> FileRow:
        """The row, locked for this transaction; NotInCatalogError if we may not see it."""
        row = session.get(FileRow, file_id, with_for_update=True)
        if row is None:
            raise no_row(file_id)
        return row

    @staticmethod
    def live_by_key(session: Session, bucket: str, key: str) -> FileRow | None:
        """The live row (that this login may see) holding the key."""
        return session.scalars(
            select(FileRow).where(
                FileRow.bucket == bucket,
                FileRow.key == key,
                FileRow.status != FileStatus.DELETED.value,
            )
        ).one_or_none()

    def hidden_live_row(self, transaction: Session | Connection, bucket: str, key: str) -> bool:
        """On PostgreSQL: does any live row, even one row-level security hides, hold the key?

        Elsewhere nothing is hidden: False (the caller has looked at the rows).
        """
        if self.dialect != "postgresql":
            return False
        return bool(
            transaction.execute(
                text("SELECT ferry_key_is_live(:bucket, :key)"), {"bucket": bucket, "key": key}
            ).scalar()
        )

    def others_deleted_last(self, session: Session, bucket: str, key: str) -> bool:
        """With no live row at the key: is its newest row another owner's deleted one?

        On PostgreSQL through ``ferry_key_is_others``, which says no more;
        elsewhere every row is visible and the caller has read them.
        """
        if self.dialect != "postgresql":
            return False
        return bool(
            session.execute(
                text("SELECT ferry_key_is_others(:bucket, :key)"), {"bucket": bucket, "key": key}
            ).scalar()
        )
