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
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, and_, create_engine, func, or_, select, text
from sqlalchemy.engine import URL, Row, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from desktop_app.core import migrate
from desktop_app.core.catalog_schema import (
    AuditAction,
    AuditRow,
    FileRow,
    FileStatus,
    OutboxEventType,
    OutboxRow,
)
from desktop_app.core.errors import (
    CatalogAccessError,
    CatalogError,
    KeyConflictError,
    NotInCatalogError,
)
from desktop_app.core.migrate import Schema
from desktop_app.core.object_keys import validate_key

log = logging.getLogger(__name__)
T = TypeVar("T")
_RETRIES = 3


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class FileRecord:
    """One catalog row, as the rest of Ferry sees it."""

    id: int
    bucket: str
    key: str
    owner: str
    original_name: str
    size: int
    sha256: str
    etag: str | None
    content_type: str
    status: FileStatus
    created_at: datetime
    uploaded_at: datetime | None
    deleted_at: datetime | None
    deleted_by: str | None
    last_error: str | None

    @classmethod
    def from_row(cls, row: FileRow | Row[Any]) -> FileRecord:
        return cls(
            id=row.id,
            bucket=row.bucket,
            key=row.key,
            owner=row.owner,
            original_name=row.original_name,
            size=row.size,
            sha256=row.sha256,
            etag=row.etag,
            content_type=row.content_type,
            status=FileStatus(row.status),
            created_at=_aware(row.created_at),
            uploaded_at=_aware(row.uploaded_at) if row.uploaded_at else None,
            deleted_at=_aware(row.deleted_at) if row.deleted_at else None,
            deleted_by=row.deleted_by,
            last_error=row.last_error,
        )


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes; everything Ferry stores is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ReservationOutcome(enum.Enum):
    RESERVED = "reserved"  # a new pending row
    RESUMED = "resumed"  # our own pending row for the same key and content
    DUPLICATE = "duplicate"  # the owner already has this content live under another row


@dataclass(frozen=True)
class Reservation:
    outcome: ReservationOutcome
    record: FileRecord


@dataclass(frozen=True)
class UploadIntent:
    bucket: str
    key: str
    original_name: str
    size: int
    sha256: str
    content_type: str = "application/octet-stream"
    token: str | None = None  # the reserving transfer's; None for adoption by a repair


@dataclass(frozen=True)
class DeleteOutcome:
    record: FileRecord
    object_deleted: bool
    error: str | None = None


@dataclass(frozen=True)
class FileQuery:
    bucket: str | None = None
    owner: str | None = None
    prefix: str | None = None
    name_contains: str | None = None
    status: FileStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_key: str | None = None  # page cursor: keys greater than this
    limit: int = 100


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: AuditAction
    file_id: int | None
    bucket: str
    key: str
    details: dict[str, Any]


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    event_type: OutboxEventType
    payload: dict[str, Any]
    created_at: datetime


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
        engine = create_engine(parsed, connect_args={"timeout": 30})
        migrate.make_sqlite_durable(engine)
        return engine
    return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})


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


def open_catalog(url: str, *, owner: str, password: str | None = None) -> CatalogService:
    """Connect, bring the schema to the newest revision, and return the service.

    A login that may not change the schema can still use a catalog that is
    already current; an outdated one is refused with a clear message.
    """
    engine = create_catalog_engine(url, password)
    where = describe_url(url)
    try:
        with engine.connect() as connection:
            found = migrate.revisions(connection, Schema.CATALOG)
            if not found.up_to_date:
                try:
                    migrate.upgrade(connection, Schema.CATALOG)
                except SQLAlchemyError as exc:
                    error = translate_db_error(exc, "upgrade its schema")
                    if isinstance(error, CatalogAccessError):
                        raise CatalogAccessError(
                            f"The catalog at {where} is at schema revision "
                            f"{found.current or 'none'} and Ferry needs {found.head}, "
                            "but this login may not upgrade it. Ask its administrator "
                            "to run `ferry catalog upgrade`."
                        ) from None
                    raise error from None
            if connection.dialect.name == "postgresql":
                owner = str(connection.execute(text("SELECT current_user")).scalar_one())
    except CatalogError:
        engine.dispose()
        raise
    except SQLAlchemyError as exc:
        engine.dispose()
        raise translate_db_error(exc, f"be opened at {where}") from None
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
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else None

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- plumbing -----------------------------------------------------------

    def _run(self, action: str, work: Callable[[Session], T]) -> T:
        """Run work in one transaction, retrying transient failures."""
        for attempt in range(1, _RETRIES + 1):
            try:
                with (
                    self._write_lock or contextlib.nullcontext(),
                    self._sessions.begin() as session,
                ):
                    return work(session)
            except IntegrityError:
                raise
            except SQLAlchemyError as exc:
                error = translate_db_error(exc, action)
                if not error.transient or attempt == _RETRIES:
                    raise error from None
                # Logged, not shown: the last failure is what a person sees.
                log.info("Catalog: %s failed (attempt %s), retrying: %s", action, attempt, error)
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _audit(
        self,
        session: Session,
        action: AuditAction,
        row: FileRow,
        details: dict[str, Any] | None = None,
    ) -> None:
        session.add(
            AuditRow(
                at=self.clock(),
                actor=self.owner,
                action=action.value,
                file_id=row.id,
                bucket=row.bucket,
                key=row.key,
                details=details or {},
            )
        )

    def _announce(self, session: Session, event_type: OutboxEventType, row: FileRow) -> None:
        session.add(
            OutboxRow(
                event_type=event_type.value,
                payload={
                    "file_id": row.id,
                    "bucket": row.bucket,
                    "key": row.key,
                    "owner": row.owner,
                    "size": row.size,
                    "sha256": row.sha256,
                    "etag": row.etag,
                    "status": row.status,
                },
                created_at=self.clock(),
                published_at=None,
            )
        )

    @staticmethod
    def _live_by_key(session: Session, bucket: str, key: str) -> FileRow | None:
        return session.scalars(
            select(FileRow).where(
                FileRow.bucket == bucket,
                FileRow.key == key,
                FileRow.status != FileStatus.DELETED.value,
            )
        ).one_or_none()

    def _new_row(
        self, intent: UploadIntent, status: FileStatus, *, owner: str, etag: str | None = None
    ) -> FileRow:
        now = self.clock()
        return FileRow(
            bucket=intent.bucket,
            key=intent.key,
            owner=owner,
            original_name=intent.original_name,
            size=intent.size,
            sha256=intent.sha256,
            etag=etag,
            content_type=intent.content_type,
            status=status.value,
            created_at=now,
            uploaded_at=now if status is FileStatus.ACTIVE else None,
        )

    @staticmethod
    def _require(session: Session, file_id: int) -> FileRow:
        row = session.get(FileRow, file_id, with_for_update=True)
        if row is None:
            raise NotInCatalogError(f"Catalog row {file_id} does not exist (or is not yours).")
        return row

    # -- upload path --------------------------------------------------------

    def reserve(self, intent: UploadIntent) -> Reservation:
        """Write the pending intent row for an upload, before any byte is sent.

        Same content already stored for this owner: DUPLICATE with that row.
        Our own pending row (same key, content and token): RESUMED (a restart).
        The same content pending for another transfer (another token, or
        another key): a transient CatalogError, since that upload may still
        fail; it is a duplicate only once stored. A live row holding the key
        with other content: KeyConflictError, naming whose it is.

        The look-up is one statement (one snapshot on PostgreSQL at READ
        COMMITTED); if another client inserts between it and our insert, the
        unique indexes refuse ours and the look-up runs again, now seeing
        the winner, so a race ends in one of the outcomes above, never in a
        wrong "other content".
        """
        validate_key(intent.key)

        def check(session: Session) -> Reservation | None:
            found = session.scalars(
                select(FileRow).where(
                    FileRow.status != FileStatus.DELETED.value,
                    or_(
                        and_(FileRow.owner == self.owner, FileRow.sha256 == intent.sha256),
                        and_(FileRow.bucket == intent.bucket, FileRow.key == intent.key),
                    ),
                )
            ).all()
            same_content = next(
                (r for r in found if r.owner == self.owner and r.sha256 == intent.sha256), None
            )
            if same_content is not None:
                return self._judge_same_content(same_content, intent)
            for holder in found:  # the OR's other half: the key, with other content
                raise KeyConflictError(
                    f"{intent.key!r} is already in bucket {intent.bucket!r} with other content "
                    f"(uploaded by {holder.owner}, {holder.status}). Upload under another name "
                    "or delete the existing file first."
                )
            return None

        def insert(session: Session) -> Reservation:
            found = check(session)
            if found is not None:
                return found
            row = self._new_row(intent, FileStatus.PENDING, owner=self.owner)
            row.token = intent.token
            session.add(row)
            session.flush()
            self._audit(session, AuditAction.RESERVE, row, {"size": row.size, "sha256": row.sha256})
            return Reservation(ReservationOutcome.RESERVED, FileRecord.from_row(row))

        try:
            return self._run(f"reserve {intent.key!r}", insert)
        except IntegrityError:
            # Another client won the race between our look-up and our insert.
            found = self._run(f"reserve {intent.key!r}", check)
            if found is not None:
                return found
            # Nothing we may see holds the key, yet the index refused it: a row
            # that row-level security hides from us, i.e. someone else's file.
            raise KeyConflictError(
                f"{intent.key!r} is already in bucket {intent.bucket!r} as someone else's "
                "file. Upload under another name, or ask its owner or an admin."
            ) from None

    @staticmethod
    def _judge_same_content(row: FileRow, intent: UploadIntent) -> Reservation:
        same_place = (row.bucket, row.key) == (intent.bucket, intent.key)
        if row.status != FileStatus.PENDING.value:
            return Reservation(ReservationOutcome.DUPLICATE, FileRecord.from_row(row))
        if same_place and intent.token is not None and row.token == intent.token:
            return Reservation(ReservationOutcome.RESUMED, FileRecord.from_row(row))
        # Not a duplicate yet: that upload (another transfer's) may still fail.
        raise CatalogError(
            f"The same content is being uploaded right now as {row.key!r} by another "
            "transfer; Ferry waits for that upload to finish and then reports this file "
            "as its duplicate.",
            transient=True,
            title="Same content in flight",
        )

    def activate(self, file_id: int, *, etag: str, token: str | None = None) -> FileRecord:
        """pending -> active, with its audit entry and file.uploaded event.

        Only the transfer holding the row's token may activate a pending row;
        a missing row (a repair sending it again) needs none.
        """

        def work(session: Session) -> FileRecord:
            row = self._require(session, file_id)
            if row.status == FileStatus.ACTIVE.value and row.etag == etag and row.token == token:
                return FileRecord.from_row(row)  # a resumed registration
            if row.status == FileStatus.PENDING.value and row.token != token:
                raise CatalogError(
                    f"{row.key!r} is reserved by another transfer; this one may not register it.",
                    title="Reserved by another upload",
                )
            if row.status not in (FileStatus.PENDING.value, FileStatus.MISSING.value):
                raise CatalogError(
                    f"{row.key!r} cannot be activated: it is {row.status}.",
                    title="Unexpected catalog state",
                )
            row.status = FileStatus.ACTIVE.value
            row.etag = etag
            row.token = token  # a repair's transfer takes a missing row over
            row.uploaded_at = self.clock()
            row.last_error = None
            session.flush()
            self._audit(session, AuditAction.ACTIVATE, row, {"etag": etag})
            self._announce(session, OutboxEventType.FILE_UPLOADED, row)
            return FileRecord.from_row(row)

        return self._run(f"activate row {file_id}", work)

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

    def release(self, file_id: int, *, reason: str, token: str | None = None) -> None:
        """Remove a pending intent after a failed or cancelled upload (audited).

        With a token, only the row reserved with it; ``None`` is the check's
        repair of a stale intent, which re-checks the row itself.
        """

        def work(session: Session) -> None:
            row = session.get(FileRow, file_id, with_for_update=True)
            if row is None or row.status != FileStatus.PENDING.value:
                return
            if token is not None and row.token != token:
                return
            self._audit(session, AuditAction.RELEASE, row, {"reason": reason})
            session.delete(row)

        self._run(f"release row {file_id}", work)

    def mark_missing(self, file_id: int, *, reason: str) -> FileRecord:
        def work(session: Session) -> FileRecord:
            row = self._require(session, file_id)
            row.status = FileStatus.MISSING.value
            row.last_error = reason
            self._audit(session, AuditAction.MARK_MISSING, row, {"reason": reason})
            self._announce(session, OutboxEventType.FILE_REPAIRED, row)
            return FileRecord.from_row(row)

        return self._run(f"mark row {file_id} missing", work)

    def adopt(self, intent: UploadIntent, *, etag: str, owner: str | None = None) -> FileRecord:
        """Register an object found in the bucket whose metadata proves its content."""
        validate_key(intent.key)

        def work(session: Session) -> FileRecord:
            row = self._new_row(intent, FileStatus.ACTIVE, owner=owner or self.owner, etag=etag)
            session.add(row)
            session.flush()
            self._audit(session, AuditAction.REPAIR, row, {"repair": "adopt"})
            self._announce(session, OutboxEventType.FILE_REPAIRED, row)
            return FileRecord.from_row(row)

        try:
            return self._run(f"adopt {intent.key!r}", work)
        except IntegrityError:
            raise KeyConflictError(
                f"{intent.key!r} cannot be adopted: a live row already holds that key or "
                "that content."
            ) from None

    def repair_activate(self, file_id: int, *, etag: str) -> FileRecord:
        """A stale pending row whose object verified becomes active (audited as a repair)."""

        def work(session: Session) -> FileRecord:
            row = self._require(session, file_id)
            row.status = FileStatus.ACTIVE.value
            row.etag = etag
            row.uploaded_at = row.uploaded_at or self.clock()
            row.last_error = None
            self._audit(session, AuditAction.REPAIR, row, {"repair": "activate", "etag": etag})
            self._announce(session, OutboxEventType.FILE_REPAIRED, row)
            return FileRecord.from_row(row)

        return self._run(f"activate row {file_id}", work)

    def record_repair(self, file_id: int, what: str) -> None:
        """Audit and announce a repair that changed the bucket, not the row."""

        def work(session: Session) -> None:
            row = self._require(session, file_id)
            self._audit(session, AuditAction.REPAIR, row, {"repair": what})
            self._announce(session, OutboxEventType.FILE_REPAIRED, row)

        self._run(f"record a repair on row {file_id}", work)

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
            row.status = FileStatus.DELETED.value
            row.deleted_at = self.clock()
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

    def delete(self, bucket: str, key: str, delete_object: Callable[[str], None]) -> DeleteOutcome:
        """Mark the row deleted (committed), then delete the object.

        A failure of the object delete is logged with key and reason, kept on
        the row and in the audit log, and left to the consistency check.
        """
        record = self.mark_deleted(bucket, key)
        try:
            delete_object(key)
        except Exception as exc:  # any storage failure: never swallowed, recorded
            reason = str(exc)
            log.error("Deleting object %r failed after its row was deleted: %s", key, reason)
            with contextlib.suppress(CatalogError):
                self.record_error(record.id, reason, AuditAction.DELETE_OBJECT_FAILED)
            return DeleteOutcome(record, object_deleted=False, error=reason)
        return DeleteOutcome(record, object_deleted=True)

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
            statement = statement.where(
                func.lower(FileRow.original_name).contains(
                    query.name_contains.lower(), autoescape=True
                )
            )
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

    def iter_in_key_order(self, bucket: str, prefix: str = "") -> Iterator[FileRecord]:
        """Every row (any status) under the prefix, streamed in key byte order.

        Plain rows, not ORM objects, fetched in batches from a server-side
        cursor: memory stays flat and 100,000 rows stream in seconds.
        """
        table = FileRow.__table__
        statement = (
            select(table)
            .where(table.c.bucket == bucket)
            .where(table.c.key.startswith(prefix, autoescape=True))
            .order_by(table.c.key, table.c.id)
        )
        try:
            with self.engine.connect() as connection:
                result = connection.execution_options(stream_results=True, yield_per=2000)
                for row in result.execute(statement):
                    yield FileRecord.from_row(row)
        except SQLAlchemyError as exc:
            raise translate_db_error(exc, "list its rows") from None

    def audit_entries(self, file_id: int | None = None) -> list[AuditEntry]:
        statement = select(AuditRow).order_by(AuditRow.id)
        if file_id is not None:
            statement = statement.where(AuditRow.file_id == file_id)

        def work(session: Session) -> list[AuditEntry]:
            return [
                AuditEntry(
                    _aware(r.at),
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
            .where(OutboxRow.published_at.is_(None))
            .order_by(OutboxRow.id)
            .limit(limit)
        )

        def work(session: Session) -> list[OutboxEvent]:
            return [
                OutboxEvent(r.id, OutboxEventType(r.event_type), r.payload, _aware(r.created_at))
                for r in session.scalars(statement)
            ]

        return self._run("read the outbox", work)

    def ping(self) -> None:
        self._run("answer", lambda session: session.execute(text("SELECT 1")).scalar_one())
