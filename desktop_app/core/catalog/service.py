"""The catalog: the server-side record of every file Ferry put into a bucket.

An SQLite file for one person, PostgreSQL for a team. This module owns the
catalog's tables (see :mod:`catalog_schema`) and offers a small service over
them; every operation is one transaction, and its audit entry and outbox event
are written in that same transaction, so a change and its announcement exist
together or not at all. SQLAlchemy errors are translated here into
:class:`CatalogError` and its kin; transient ones (a lost connection, a locked
SQLite file) are retried a few times before they are reported.

Owners: on PostgreSQL the owner is the catalog login (``current_user``) and
row-level security keeps users to their own rows; on SQLite it is the
profile's user name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Engine,
    Executable,
    Table,
    and_,
    bindparam,
    insert,
    or_,
    select,
    text,
    union,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from desktop_app.core.catalog.database import (
    CatalogMode,
    bring_up_to_date,
    create_catalog_engine,
    describe_url,
    refuse_journal_file,
    translate_db_error,
)
from desktop_app.core.catalog.outbox import EventOutbox, OutboxBacklog
from desktop_app.core.catalog.records import (
    NOT_LOOKED,
    RECORD_COLUMNS,
    AuditEntry,
    DeleteOutcome,
    FileQuery,
    FileRecord,
    ObjectAtKey,
    OutboxEvent,
    Reservation,
    ReservationOutcome,
    UploadIntent,
    aware,
    utcnow,
)
from desktop_app.core.catalog.repair import KeyRepair
from desktop_app.core.catalog.schema import (
    AuditAction,
    AuditRow,
    FileRow,
    FileStatus,
    OutboxEventType,
    OutboxRow,
)
from desktop_app.core.db.group_commit import GroupCommitter, WriterConnection
from desktop_app.core.model.errors import (
    CatalogError,
    ErrorCause,
    KeyConflictError,
    NotInCatalogError,
)
from desktop_app.core.model.object_keys import validate_key
from desktop_app.core.settings.profiles import DuplicatePolicy

log = logging.getLogger(__name__)
T = TypeVar("T")
Tx = TypeVar("Tx", Session, Connection)
_RETRIES = 3

__all__ = [
    "AuditEntry",
    "CatalogMode",
    "CatalogService",
    "DeleteOutcome",
    "FileQuery",
    "FileRecord",
    "KeyRepair",
    "ObjectAtKey",
    "OutboxBacklog",
    "OutboxEvent",
    "Reservation",
    "ReservationOutcome",
    "UploadIntent",
    "describe_url",
    "open_catalog",
    "translate_db_error",
    "utcnow",
]


_FILES = cast(Table, FileRow.__table__)
_AUDIT = cast(Table, AuditRow.__table__)
_OUTBOX = cast(Table, OutboxRow.__table__)
_AUDIT_CALL = text("SELECT ferry_audit(:file_id, :bucket, :key, :action, CAST(:details AS json))")
_ANNOUNCE_CALL = text("SELECT ferry_announce(:file_id, :event)")
_KEY_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))")
_TAKE_WRITE_LOCK = text("UPDATE files SET id = id WHERE 0 = 1")
# The transaction's start on the database server's clock.
_DATABASE_NOW = text("SELECT now()")
# A row's record and its reserving transfer's token (not part of the record).
_COLUMNS_AND_TOKEN = [*(_FILES.c[name] for name in RECORD_COLUMNS), _FILES.c.token]


_LIVE = _FILES.c.status != FileStatus.DELETED.value
_LIVE_AT_KEY = select(*_COLUMNS_AND_TOKEN).where(
    _FILES.c.bucket == bindparam("bucket"), _LIVE, _FILES.c.key == bindparam("key")
)


def _reservation_lookup() -> Executable:
    """The rows a reservation decides by: this content of ours, and this key's holder.

    A UNION of two index look-ups, in one statement (one snapshot): written
    as one WHERE with an OR, SQLite read every row of the bucket for each
    reservation (O(n) per file; a catalog of 12,000 rows already slowed small
    uploads by half). Core, not ORM: it runs for every file uploaded.
    """
    live = and_(_FILES.c.bucket == bindparam("bucket"), _FILES.c.status != FileStatus.DELETED.value)
    same_content = select(*_COLUMNS_AND_TOKEN).where(
        live,
        _FILES.c.owner == bindparam("owner"),
        _FILES.c.sha256 == bindparam("sha256"),
        # Content stored at another server is no duplicate.
        or_(_FILES.c.endpoint == bindparam("endpoint"), _FILES.c.endpoint.is_(None)),
    )
    return union(same_content, _LIVE_AT_KEY)


_RESERVATION_LOOKUP = _reservation_lookup()
# The columns set are the parameters given (besides file_id).
_UPDATE_ROW = update(_FILES).where(_FILES.c.id == bindparam("file_id"))
_INSERT_ROW = insert(_FILES)
_INSERT_AUDIT = insert(_AUDIT)
_INSERT_OUTBOX = insert(_OUTBOX)
_ROW_FOR_UPDATE = (
    select(*_COLUMNS_AND_TOKEN, _FILES.c.replaces_id)
    .where(_FILES.c.id == bindparam("file_id"))
    .with_for_update()
)
_ROW_BY_ID = select(*_COLUMNS_AND_TOKEN).where(_FILES.c.id == bindparam("file_id"))


def _with_token(values: Sequence[Any]) -> tuple[FileRecord, str | None]:
    return FileRecord.from_columns(values[:-1]), values[-1]


def _connection_of(transaction: Session | Connection, row: object) -> Connection:
    """The connection to write through; an ORM row's pending changes go first."""
    if isinstance(transaction, Connection):
        return transaction
    if isinstance(row, FileRow):
        transaction.flush()
    return transaction.connection()


def _no_row(file_id: int) -> NotInCatalogError:
    return NotInCatalogError(f"Catalog row {file_id} does not exist (or is not yours).")


def open_catalog(
    url: str,
    *,
    owner: str,
    password: str | None = None,
    mode: CatalogMode = CatalogMode.MAY_MIGRATE,
    journal_file: Path | None = None,
) -> CatalogService:
    """Connect, check the database is Ferry's catalog, bring it up to date, return the service.

    Another application's database and Ferry's journal (``journal_file``) are
    refused before anything is written; ``mode`` says whether an older catalog
    may be upgraded or is refused (see :func:`catalog_db.bring_up_to_date`). A
    login that may not change the schema can still use a catalog that is
    already current; an outdated one is refused with a clear message.
    """
    if journal_file is not None:
        refuse_journal_file(url, journal_file)
    engine = create_catalog_engine(url, password)
    where = describe_url(url)
    try:
        with engine.connect() as connection:
            bring_up_to_date(connection, where, mode)
            if connection.dialect.name == "postgresql":
                owner = str(connection.execute(text("SELECT current_user")).scalar_one())
    except CatalogError:
        engine.dispose()
        raise
    except SQLAlchemyError as exc:
        engine.dispose()
        raise translate_db_error(exc, f"be opened at {where}") from exc
    return CatalogService(engine, owner=owner)


class CatalogService:
    """Typed operations over the catalog; each is one transaction."""

    def __init__(self, engine: Engine, *, owner: str, clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.owner = owner
        self.clock = clock
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time and its busy handler sleeps in
        # growing steps while it waits; threads of this process queue on a
        # lock instead, which keeps many small uploads from stalling.
        on_sqlite = engine.dialect.name == "sqlite"
        self._write_lock = threading.Lock() if on_sqlite else None
        # Reservations and activations of many uploads share transactions,
        # written by one thread. On SQLite it keeps a connection of its own;
        # PostgreSQL's pool holds two per client (a check streams on one while
        # the other writes), so there the writer takes one per transaction.
        self._writer_connection = WriterConnection(engine) if on_sqlite else None
        self._group: GroupCommitter[Connection] = GroupCommitter(
            functools.partial(self._connect, self._writer_connection),
            functools.partial(self._run_connected, writer=self._writer_connection),
            name="ferry-catalog",
            most=64,
        )

    @contextlib.contextmanager
    def _begin(self) -> Iterator[Session]:
        with self._write_lock or contextlib.nullcontext(), self._sessions.begin() as session:
            yield session

    @contextlib.contextmanager
    def _connect(self, writer: WriterConnection | None = None) -> Iterator[Connection]:
        """A transaction without an ORM session: the upload path's, once or twice per file."""
        begin = writer.begin() if writer is not None else self.engine.begin()
        with self._write_lock or contextlib.nullcontext(), begin as connection:
            yield connection

    def close(self) -> None:
        self._group.stop()
        if self._writer_connection is not None:
            self._writer_connection.close()
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- plumbing -----------------------------------------------------------

    def _run(self, action: str, work: Callable[[Session], T]) -> T:
        """Run work in one transaction, retrying transient failures."""
        return self._retrying(action, work, self._begin)

    def _run_connected(
        self,
        action: str,
        work: Callable[[Connection], T],
        *,
        writer: WriterConnection | None = None,
    ) -> T:
        return self._retrying(action, work, functools.partial(self._connect, writer))

    @staticmethod
    def _retrying(
        action: str, work: Callable[[Tx], T], begin: Callable[[], AbstractContextManager[Tx]]
    ) -> T:
        for attempt in range(1, _RETRIES + 1):
            try:
                with begin() as transaction:
                    return work(transaction)
            except IntegrityError:
                raise
            except SQLAlchemyError as exc:
                error = translate_db_error(exc, action)
                if not error.transient or attempt == _RETRIES:
                    raise error from exc
                # Logged, not shown: the last failure is what a person sees.
                log.info("Catalog: %s failed (attempt %s), retrying: %s", action, attempt, error)
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _audit(
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
            connection.execute(
                _AUDIT_CALL,
                {
                    "file_id": file_id,
                    "bucket": bucket,
                    "key": key,
                    "action": action.value,
                    "details": json.dumps(details or {}),
                },
            )
            return
        connection.execute(
            _INSERT_AUDIT,
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

    def _announce(
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
            connection.execute(_ANNOUNCE_CALL, {"file_id": row.id, "event": event_type.value})
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
        connection.execute(
            _INSERT_OUTBOX,
            {
                "event_type": event_type.value,
                "owner": row.owner,
                "payload": payload,
                "created_at": self.clock(),
                "published_at": None,
            },
        )

    def _lock_key(self, transaction: Session | Connection, bucket: str, key: str) -> None:
        """Serialise every change to one key with a repair acting on it.

        PostgreSQL: a transaction-scoped advisory lock on the key (rows that do
        not exist yet cannot be locked). SQLite: taking the file's write lock
        now, which every other writer waits for.
        """
        if self.dialect == "postgresql":
            transaction.execute(_KEY_LOCK, {"name": f"{bucket}/{key}"})
        else:
            self._take_write_lock(transaction)

    def _take_write_lock(self, transaction: Session | Connection) -> None:
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
            transaction.execute(_TAKE_WRITE_LOCK)

    def _now(self, transaction: Session | Connection) -> datetime:
        """The time a row records, on the one clock every client and check shares.

        PostgreSQL: the server's (a team's laptops' clocks may be minutes
        apart, and liveness and grace compare times written by different
        ones). An SQLite catalog is one computer's file: that computer's clock.
        """
        if self.dialect != "postgresql":
            return self.clock()
        return aware(transaction.execute(_DATABASE_NOW).scalar_one())

    def database_now(self) -> datetime:
        """The catalog's clock now: what a check measures row ages against."""
        return self._run("read the database's clock", self._now)

    @staticmethod
    def _live_by_key(session: Session, bucket: str, key: str) -> FileRow | None:
        return session.scalars(
            select(FileRow).where(
                FileRow.bucket == bucket,
                FileRow.key == key,
                FileRow.status != FileStatus.DELETED.value,
            )
        ).one_or_none()

    @staticmethod
    def _new_row_values(
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

    def _new_row(
        self,
        session: Session,
        intent: UploadIntent,
        status: FileStatus,
        *,
        owner: str,
        etag: str | None = None,
    ) -> FileRow:
        now = self._now(session)
        return FileRow(**self._new_row_values(intent, status, owner=owner, now=now, etag=etag))

    @staticmethod
    def _change(
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
        connection.execute(_UPDATE_ROW, {"file_id": row.id, "token": token, **columns})
        fields: dict[str, Any] = {
            name: aware(value) if isinstance(value, datetime) else value
            for name, value in changes.items()
        }
        return dataclasses.replace(row, **fields)

    @staticmethod
    def _require(session: Session, file_id: int) -> FileRow:
        row = session.get(FileRow, file_id, with_for_update=True)
        if row is None:
            raise _no_row(file_id)
        return row

    # -- upload path --------------------------------------------------------

    def reserve(
        self,
        intent: UploadIntent,
        duplicates: DuplicatePolicy = DuplicatePolicy.COPY,
        *,
        overwrite: bool = False,
    ) -> Reservation:
        """Write the pending intent row for an upload, before any byte is sent.

        The duplicate rule holds within one bucket and one owner:
        - this key already holds this content, ours and active: DUPLICATE
          (stored already, nothing to do);
        - our own pending row (same key, content and token): RESUMED;
        - our own row for this key marked missing, same content: taken over
          (RESERVED), the bytes are sent again;
        - the content active under another key of ours: COPY (a pending row
          to be filled by a server-side copy of ``source``), or DUPLICATE
          when the policy is SKIP;
        - the content being uploaded right now by another transfer (ours):
          a transient CatalogError, since that upload may still fail;
        - a live row holding the key with other content, or another owner's:
          KeyConflictError, naming whose it is where we may see it; with
          ``overwrite``, our own active (or missing) row of other content
          steps aside for the new one instead (see :meth:`_step_aside`).

        The look-up is one statement (one snapshot on PostgreSQL at READ
        COMMITTED); if another client inserts between it and our insert, the
        unique indexes refuse ours and the look-up runs again, now seeing
        the winner, so a race ends in one of the outcomes above.
        """
        validate_key(intent.key)

        def check(connection: Connection) -> Reservation | FileRecord | None:
            """The outcome decided by what exists, or the row to copy from, or None."""
            found = [
                _with_token(values)
                for values in connection.execute(
                    _RESERVATION_LOOKUP,
                    {
                        "bucket": intent.bucket,
                        "owner": self.owner,
                        "sha256": intent.sha256,
                        "endpoint": intent.endpoint,
                        "key": intent.key,
                    },
                )
            ]
            holder = next(((r, t) for r, t in found if r.key == intent.key), None)
            if holder is not None:
                if not (overwrite and self._replaceable(holder[0], intent)):
                    return self._judge_key_holder(connection, *holder, intent)
                found.remove(holder)  # to be replaced: no source, no duplicate
            stored = sorted(
                (r for r, _ in found if r.status is FileStatus.ACTIVE), key=lambda r: r.id
            )
            if stored and duplicates is DuplicatePolicy.SKIP:
                return Reservation(ReservationOutcome.DUPLICATE, stored[0])
            # The copy is conditional on the ETag the source row verified.
            source = next((r for r in stored if r.etag is not None), None)
            if source is not None:
                return source
            sending = next(
                (r for r, _ in found if r.status is FileStatus.PENDING and r.copied_from is None),
                None,
            )
            if sending is not None:
                raise CatalogError(
                    f"The same content is being uploaded right now as {sending.key!r} by "
                    "another transfer; Ferry waits for that upload to finish and then "
                    f"creates {intent.key!r} as a copy of it, without sending the bytes again.",
                    transient=True,
                    title="Same content in flight",
                    cause=ErrorCause.CONFLICT,
                )
            return None

        def insert_intent(connection: Connection) -> Reservation:
            self._lock_key(connection, intent.bucket, intent.key)
            found = check(connection)
            if isinstance(found, Reservation):
                return found
            # Only now, with the new row certain: the old one steps aside.
            replaced = self._step_aside(connection, intent) if overwrite else None
            source = found
            values = self._new_row_values(
                intent, FileStatus.PENDING, owner=self.owner, now=self._now(connection)
            )
            values.update(
                token=intent.token,
                alive_at=values["created_at"],
                copied_from=source.key if source is not None else None,
                replaces_id=replaced.id if replaced is not None else None,
            )
            inserted = connection.execute(_INSERT_ROW, values)
            (file_id,) = inserted.inserted_primary_key or (None,)
            assert file_id is not None
            values["id"] = file_id
            record = FileRecord.from_columns([values.get(name) for name in RECORD_COLUMNS])
            details: dict[str, Any] = {"size": intent.size, "sha256": intent.sha256}
            if source is not None:
                details["copy_of"] = source.key
            if replaced is not None:
                details["replaces"] = replaced.id
            self._audit(connection, AuditAction.RESERVE, record, details)
            # Stepped aside from active (a missing one is not returned): its object stays.
            replaced_etag = replaced.etag if replaced is not None else None
            if source is not None:
                return Reservation(ReservationOutcome.COPY, record, source, replaced_etag)
            return Reservation(ReservationOutcome.RESERVED, record, replaced_etag=replaced_etag)

        try:
            order = f"{intent.bucket}/{intent.key}"
            return self._group.run(insert_intent, label=f"reserve {intent.key!r}", order=order)
        except IntegrityError:
            # Another client won the race between our look-up and our insert.
            found = self._run_connected(f"reserve {intent.key!r}", check)
            if isinstance(found, Reservation):
                return found
            hidden = self._run(
                f"look up {intent.key!r}",
                lambda s: self._hidden_live_row(s, intent.bucket, intent.key),
            )
            if hidden:
                raise KeyConflictError(
                    f"{intent.key!r} is already in bucket {intent.bucket!r} as someone else's "
                    "file. Upload under another name, or ask its owner or an admin."
                ) from None
            raise CatalogError(
                f"Another upload of the same content to bucket {intent.bucket!r} started "
                f"at the same moment as {intent.key!r}; Ferry tries again.",
                transient=True,
                title="Same content in flight",
                cause=ErrorCause.CONFLICT,
            ) from None

    def _replaceable(self, row: FileRecord, intent: UploadIntent) -> bool:
        """May an overwrite by this intent take the key from this live row?

        Our own row of other content, stored (active) or known lost (missing);
        anyone else's row, or an upload in flight, never.
        """
        return (
            row.owner == self.owner
            and row.sha256 != intent.sha256
            and row.status in (FileStatus.ACTIVE, FileStatus.MISSING)
        )

    def _step_aside(self, connection: Connection, intent: UploadIntent) -> FileRecord | None:
        """An overwrite's first step: our own row of other content at the key leaves it.

        One live row holds a key, so the old row is marked deleted in the
        reservation's transaction; but an active one is not announced and its
        object is untouched until the new row is active
        (:meth:`_retire_replaced`), and a released replacement puts it back
        (:meth:`_give_back`). A missing one (no bytes to give back) is
        deleted and announced at once. Returns the row to be given back.
        """
        values = connection.execute(
            _LIVE_AT_KEY, {"bucket": intent.bucket, "key": intent.key}
        ).one_or_none()
        if values is None:
            return None
        row, token = _with_token(values)
        if not self._replaceable(row, intent):
            return None
        stepped = self._change(
            connection,
            row,
            token=token,
            status=FileStatus.DELETED,
            deleted_at=self._now(connection),
            deleted_by=self.owner,
        )
        self._audit(
            connection, AuditAction.DELETE, stepped, {"replaced_by_upload_of": intent.sha256}
        )
        if row.status is FileStatus.MISSING:
            self._announce(connection, OutboxEventType.FILE_DELETED, stepped)
            return None
        return stepped

    def _retire_replaced(
        self, transaction: Session | Connection, replaced_id: int, replacing: FileRecord
    ) -> None:
        """The row an overwrite replaced is gone for good: its deletion is announced now."""
        values = transaction.execute(_ROW_BY_ID, {"file_id": replaced_id}).one_or_none()
        if values is None:
            return
        replaced, _token = _with_token(values)
        same_key = (replaced.bucket, replaced.key) == (replacing.bucket, replacing.key)
        if replaced.status is FileStatus.DELETED and same_key:
            self._announce(transaction, OutboxEventType.FILE_DELETED, replaced)

    def _give_back(
        self, session: Session, released: FileRow, at_key: ObjectAtKey, reason: str
    ) -> None:
        """A released overwrite: the row it replaced holds the key again, as it was.

        Unless the bytes are gone (``at_key`` proves another object there, or
        none): then that row's deletion stands and is announced.
        """
        replaced_id = released.replaces_id
        if replaced_id is None:
            return
        session.flush()  # the released row first: one live row per key
        old = session.get(FileRow, replaced_id, with_for_update=True)
        if (
            old is None
            or (old.bucket, old.key) != (released.bucket, released.key)
            or old.status != FileStatus.DELETED.value
            or self._live_by_key(session, old.bucket, old.key) is not None
        ):
            return
        if not at_key.still_holds(old.etag):
            self._announce(session, OutboxEventType.FILE_DELETED, old)  # its deletion stands
            return
        old.status = FileStatus.ACTIVE.value
        old.deleted_at = None
        old.deleted_by = None
        self._audit(session, AuditAction.RESTORE, old, {"reason": reason})

    def _hidden_live_row(self, transaction: Session | Connection, bucket: str, key: str) -> bool:
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

    def _judge_key_holder(
        self, connection: Connection, row: FileRecord, token: str | None, intent: UploadIntent
    ) -> Reservation:
        if row.endpoint is not None and intent.endpoint not in (None, row.endpoint):
            raise KeyConflictError(
                f"{intent.key!r} in bucket {intent.bucket!r} is registered in this catalog at "
                f"another server ({row.endpoint}), not at {intent.endpoint}. One catalog keeps "
                "one name per bucket name: upload under another name, or give this server's "
                "files a catalog (or prefix) of their own."
            )
        ours = row.owner == self.owner and row.sha256 == intent.sha256
        if not ours:
            raise KeyConflictError(
                f"{intent.key!r} is already in bucket {intent.bucket!r} with other content "
                f"(uploaded by {row.owner}, {row.status.value}). Upload under another name "
                "or delete the existing file first."
            )
        if row.status is FileStatus.ACTIVE:
            return Reservation(ReservationOutcome.DUPLICATE, row)
        if row.status is FileStatus.MISSING:
            # Known lost: this transfer sends the bytes again into the same row.
            taken = self._change(
                connection,
                row,
                token=intent.token,
                status=FileStatus.PENDING,
                copied_from=None,
                alive_at=self._now(connection),
            )
            self._audit(connection, AuditAction.RESERVE, taken, {"resending": "missing object"})
            return Reservation(ReservationOutcome.RESERVED, taken)
        if intent.token is not None and token == intent.token:
            return Reservation(ReservationOutcome.RESUMED, row)
        # Not stored yet: that upload (another transfer's) may still fail.
        raise CatalogError(
            f"{intent.key!r} is being uploaded right now with the same content by another "
            "transfer; Ferry waits for that upload to finish and then reports this file "
            "as stored.",
            transient=True,
            title="Same content in flight",
            cause=ErrorCause.CONFLICT,
        )

    def activate(
        self,
        file_id: int,
        *,
        etag: str,
        token: str | None = None,
        copied_from: str | None = None,
        version_id: str | None = None,
        checksum: str | None = None,
        checksum_type: str | None = None,
    ) -> FileRecord:
        """pending -> active, with its audit entry and file.uploaded event.

        Only the transfer holding the row's token may activate a pending row;
        a missing row (a repair sending it again) needs none. ``copied_from``
        is the key a server-side copy filled this one from (None: bytes sent);
        ``version_id`` the version the write made, where the bucket keeps versions;
        ``checksum`` the full-object checksum of ``checksum_type`` the server
        verified and Ferry read back equal to its own.
        """

        def work(connection: Connection) -> FileRecord:
            # On SQLite the row is read under the write lock: nothing changes it
            # between this judgement and the update.
            self._take_write_lock(connection)
            values = connection.execute(_ROW_FOR_UPDATE, {"file_id": file_id}).one_or_none()
            if values is None:
                raise _no_row(file_id)
            row, holder = _with_token(values[:-1])
            replaces: int | None = values[-1]
            self._lock_key(connection, row.bucket, row.key)
            if row.status is FileStatus.ACTIVE and row.etag == etag and holder == token:
                return row  # a resumed registration
            if row.status is FileStatus.PENDING and holder != token:
                raise CatalogError(
                    f"{row.key!r} is reserved by another transfer; this one may not register it.",
                    title="Reserved by another upload",
                    cause=ErrorCause.CONFLICT,
                )
            if row.status not in (FileStatus.PENDING, FileStatus.MISSING):
                raise CatalogError(
                    f"{row.key!r} cannot be activated: it is {row.status.value}.",
                    title="Unexpected catalog state",
                    cause=ErrorCause.OTHER,
                )
            row = self._change(
                connection,
                row,
                token=token,  # a repair's transfer takes a missing row over
                status=FileStatus.ACTIVE,
                etag=etag,
                copied_from=copied_from,
                version_id=version_id,
                checksum=checksum,
                checksum_type=checksum_type if checksum is not None else None,
                uploaded_at=self._now(connection),
                last_error=None,
            )
            details = {"etag": etag}
            if version_id is not None:
                details["version_id"] = version_id
            if checksum is not None and checksum_type is not None:
                details[checksum_type.lower()] = checksum
            if copied_from is not None:
                details["copied_from"] = copied_from
            if replaces is not None:
                connection.execute(_UPDATE_ROW, {"file_id": row.id, "replaces_id": None})
                self._retire_replaced(connection, replaces, row)
            self._audit(connection, AuditAction.ACTIVATE, row, details)
            self._announce(connection, OutboxEventType.FILE_UPLOADED, row)
            return row

        # Activations go first in a group (ordered ahead of every key).
        return self._group.run(work, label=f"activate row {file_id}")

    def holds(self, file_id: int, token: str | None) -> bool:
        """Is the row still this transfer's pending reservation (nobody else's, not live)?"""

        def work(session: Session) -> bool:
            row = session.get(FileRow, file_id)
            return (
                row is not None
                and row.status == FileStatus.PENDING.value
                and token is not None
                and row.token == token
            )

        return self._run(f"read row {file_id}", work)

    @staticmethod
    def _reserved(session: Session, file_id: int, token: str | None) -> bool:
        row = session.get(FileRow, file_id)
        if row is None:
            return False
        # A row marked missing is sent again by a repair's transfer, under no
        # token; one active under this token was registered by this transfer
        # before a crash kept the journal from saying so (it resends the same bytes).
        ours = token is not None and row.token == token
        held = (FileStatus.PENDING.value, FileStatus.ACTIVE.value)
        return row.status == FileStatus.MISSING.value or (ours and row.status in held)

    def release(
        self,
        file_id: int,
        *,
        reason: str,
        token: str | None,
        at_key: ObjectAtKey = NOT_LOOKED,
    ) -> None:
        """Remove a pending intent after a failed or cancelled upload (audited).

        Only the row reserved with this token: another transfer's reservation
        (or a row a repair took over) is left alone. An overwrite's intent
        gives the key back to the row it replaced while ``at_key`` (what the
        bucket holds there) does not prove that row's bytes gone.
        """

        def work(session: Session) -> None:
            row = session.get(FileRow, file_id, with_for_update=True)
            if row is None or row.status != FileStatus.PENDING.value or row.token != token:
                return
            self._audit(session, AuditAction.RELEASE, row, {"reason": reason})
            session.delete(row)
            self._give_back(session, row, at_key, reason)

        self._run(f"release row {file_id}", work)

    def touch(self, reservations: list[tuple[int, str]]) -> list[int]:
        """Say that these pending uploads (row id, token) are alive: a check leaves them be.

        Returns the row ids that are no longer their transfer's reservation
        (removed by a repair, or taken by another token): those uploads must
        not complete.
        """
        if not reservations:
            return []

        def work(session: Session) -> list[int]:
            now = self._now(session)
            lost = []
            for file_id, token in reservations:
                touched = session.execute(
                    update(FileRow)
                    .where(
                        FileRow.id == file_id,
                        FileRow.token == token,
                        FileRow.status == FileStatus.PENDING.value,
                    )
                    .values(alive_at=now)
                )
                count: int = touched.rowcount  # type: ignore[attr-defined]
                if count == 0 and not self._reserved(session, file_id, token):
                    lost.append(file_id)
            return lost

        return self._run("note uploads in progress", work)

    @contextlib.contextmanager
    def repairing(self, bucket: str, key: str) -> Iterator[KeyRepair]:
        """A repair's own transaction on one key: its rows read and locked, then changed.

        Every other change to the key (a reservation, an activation, a delete)
        waits until this transaction ends, so what the repair re-checks inside
        it (rows, and the object the caller HEADs) cannot change before it
        acts. Leaving the block commits; an exception rolls everything back.
        """
        try:
            with self._begin() as session:
                self._lock_key(session, bucket, key)
                rows = session.scalars(
                    select(FileRow)
                    .where(FileRow.bucket == bucket, FileRow.key == key)
                    .order_by(FileRow.id)
                    .with_for_update()
                ).all()
                live = [r for r in rows if r.status != FileStatus.DELETED.value]
                # One live row per key: if we see none, one may still be hidden from us.
                others_live = any(r.owner != self.owner for r in live) or (
                    not live and self._hidden_live_row(session, bucket, key)
                )
                others_deleted_last = not live and self._others_deleted_last(session, bucket, key)
                yield KeyRepair(
                    self, session, bucket, key, list(rows), others_live, others_deleted_last
                )
        except IntegrityError:
            raise KeyConflictError(
                f"{key!r} cannot be registered: a live row holds that key now."
            ) from None
        except SQLAlchemyError as exc:
            raise translate_db_error(exc, f"repair {key!r}") from exc

    def key_is_live(self, bucket: str, key: str) -> bool:
        """Does any live row, whoever's, hold this key? (Nothing else about it.)"""

        def work(session: Session) -> bool:
            return self._live_by_key(session, bucket, key) is not None or self._hidden_live_row(
                session, bucket, key
            )

        return self._run(f"look up {key!r}", work)

    def _others_deleted_last(self, session: Session, bucket: str, key: str) -> bool:
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

    def iter_others_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        """Keys under the prefix that another owner holds, in key byte order.

        Held: their live row is there, or no live row is and the newest row is
        their deletion (their object may still be stored: theirs to clean up,
        never another user's to adopt). Nothing else about those rows: on
        PostgreSQL a normal user learns it through ``ferry_others_live_keys``;
        elsewhere every row is visible (and only live rows are named).
        """
        statement: Executable
        if self.dialect == "postgresql":
            statement = text("SELECT key FROM ferry_others_live_keys(:bucket, :prefix)")
            params = {"bucket": bucket, "prefix": prefix}
        else:
            table = _FILES
            statement = (
                select(table.c.key)
                .where(
                    table.c.bucket == bucket,
                    table.c.key.startswith(prefix, autoescape=True),
                    table.c.status != FileStatus.DELETED.value,
                    table.c.owner != self.owner,
                )
                .order_by(table.c.key)
            )
            params = {}
        for (key,) in self._stream(statement, params, "list the keys others hold"):
            yield str(key)

    def _stream(
        self, statement: Executable, params: dict[str, str], action: str
    ) -> Iterator[Row[Any]]:
        """Rows fetched in batches from a server-side cursor: memory stays flat."""
        try:
            with self.engine.connect() as connection:
                result = connection.execution_options(stream_results=True, yield_per=2000)
                yield from result.execute(statement, params)
        except SQLAlchemyError as exc:
            raise translate_db_error(exc, action) from exc

    def is_admin(self) -> bool:
        """May this login see and repair every owner's rows?"""
        if self.dialect != "postgresql":
            return True
        query = text(
            "SELECT rolsuper OR rolbypassrls OR EXISTS (SELECT 1 FROM pg_roles a "
            "WHERE a.rolname = 'ferry_admin' AND pg_has_role(current_user, a.oid, 'member')) "
            "FROM pg_roles WHERE rolname = current_user"
        )
        return bool(self._run("check the login's role", lambda s: s.execute(query).scalar()))

    # -- delete path (invariant 2) -------------------------------------------

    def mark_deleted(self, bucket: str, key: str) -> FileRecord:
        def work(session: Session) -> FileRecord:
            row = self._live_by_key(session, bucket, key)
            if row is None:
                raise NotInCatalogError(
                    f"{key!r} is not a live file in bucket {bucket!r} "
                    "(never uploaded, already deleted, or not yours). See `ferry ls`."
                )
            if row.status == FileStatus.PENDING.value:
                # Its upload would go on and store the bytes again, with no row.
                raise CatalogError(
                    f"{key!r} is being uploaded right now and is not stored yet: cancel that "
                    "upload (`ferry cancel ID`, or Cancel in the window) instead of deleting it.",
                    title="Upload in progress",
                    cause=ErrorCause.OTHER,
                )
            row.status = FileStatus.DELETED.value
            row.deleted_at = self._now(session)
            row.deleted_by = self.owner
            session.flush()
            self._audit(session, AuditAction.DELETE, row)
            self._announce(session, OutboxEventType.FILE_DELETED, row)
            return FileRecord.from_row(row)

        return self._run(f"delete {key!r}", work)

    def record_error(self, file_id: int, error: str, action: AuditAction) -> None:
        def work(session: Session) -> None:
            row = self._require(session, file_id)
            row.last_error = error
            self._audit(session, action, row, {"error": error})

        self._run(f"record an error on row {file_id}", work)

    def delete(
        self, bucket: str, key: str, delete_object: Callable[[FileRecord], str | None]
    ) -> DeleteOutcome:
        """Mark the row deleted (committed), then delete its object (given the row;
        it may answer a note on what became of the bytes).

        A failure of the object delete is logged with key and reason, kept on
        the row and in the audit log, and left to the consistency check.
        """
        record = self.mark_deleted(bucket, key)
        try:
            note = delete_object(record)
        except Exception as exc:  # noqa: BLE001 - any failure after the row went: recorded, never lost
            reason = str(exc)
            log.error("Deleting object %r failed after its row was deleted: %s", key, reason)
            with contextlib.suppress(CatalogError):
                self.record_error(record.id, reason, AuditAction.DELETE_OBJECT_FAILED)
            return DeleteOutcome(record, object_deleted=False, error=reason)
        return DeleteOutcome(record, object_deleted=True, note=note)

    # -- reading ------------------------------------------------------------

    def get(self, file_id: int) -> FileRecord | None:
        def work(session: Session) -> FileRecord | None:
            row = session.get(FileRow, file_id)
            return FileRecord.from_row(row) if row else None

        return self._run(f"read row {file_id}", work)

    def live(self, bucket: str, key: str) -> FileRecord | None:
        def work(session: Session) -> FileRecord | None:
            row = self._live_by_key(session, bucket, key)
            return FileRecord.from_row(row) if row else None

        return self._run(f"look up {key!r}", work)

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

        return self._run("search the catalog", work)

    def _name_matches(self, fragment: str) -> ColumnElement[bool]:
        """The file's name or its key (the folders it is under) holds ``fragment`` in any case,
        ``%`` and ``_`` taken as they are (#20: a folder's name finds the files in it).

        Both sides are lowered by the database (PostgreSQL ILIKE; SQLite lower(),
        which folds ASCII letters only, so "É" finds "É" but not "é"). On
        PostgreSQL the key's byte-order collation ("C") would fold ASCII only:
        it is compared in the database's own collation, as the name is.
        """
        key = FileRow.key.collate("default") if self.dialect == "postgresql" else FileRow.key
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
            query = select(*(_FILES.c[name] for name in RECORD_COLUMNS)).where(
                _FILES.c.bucket == bucket, _FILES.c.version_id.in_(ids)
            )
            return [FileRecord.from_columns(values) for values in session.execute(query)]

        found = self._run("read the rows of stored versions", work)
        return [row for row in found if (row.key, row.version_id) in wanted]

    def iter_in_key_order(self, bucket: str, prefix: str = "") -> Iterator[FileRecord]:
        """Every row (any status) under the prefix, streamed in key byte order.

        Plain rows, not ORM objects, fetched in batches from a server-side
        cursor: memory stays flat and 100,000 rows stream in seconds.
        """
        table = _FILES
        statement = (
            select(*(table.c[name] for name in RECORD_COLUMNS))
            .where(table.c.bucket == bucket)
            .where(table.c.key.startswith(prefix, autoescape=True))
            .order_by(table.c.key, table.c.id)
        )
        for row in self._stream(statement, {}, "list its rows"):
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

        return self._run("read the audit log", work)

    def unpublished_events(self, limit: int = 1000) -> list[OutboxEvent]:
        statement = (
            select(OutboxRow)
            .where(OutboxRow.published_at.is_(None), OutboxRow.skipped_reason.is_(None))
            .order_by(OutboxRow.id)
            .limit(limit)
        )

        def work(session: Session) -> list[OutboxEvent]:
            return [OutboxEvent.from_row(r) for r in session.scalars(statement)]

        return self._run("read the outbox", work)

    def outbox(self) -> EventOutbox:
        """The relay's view of the outbox (claim, mark, wait), on this catalog's engine."""
        return EventOutbox(self.engine)

    def outbox_backlog(self) -> OutboxBacklog:
        """How many events wait for a relay; any login may ask."""
        return EventOutbox(self.engine).backlog()

    def ping(self) -> None:
        self._run("answer", lambda session: session.execute(text("SELECT 1")).scalar_one())
