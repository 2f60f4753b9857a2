"""The journal: Ferry's local, crash-safe memory of every transfer.

One SQLite file per user in the data dir (WAL, ``synchronous=FULL`` so a part
marked done survives a power cut), owned by one running Ferry at a time
through an exclusive lock file. A fact is committed before anything depends on
it: the multipart upload id before the first part is sent; a part is marked
done only after the server answered for it. Writes are serialised through one
lock and kept short; reads may come from any thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    delete,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from desktop_app.core.db import migrate
from desktop_app.core.db.group_commit import GroupCommitter, WriterConnection
from desktop_app.core.db.locks import LockHeld, PidLock, unwritable
from desktop_app.core.db.migrate import Schema
from desktop_app.core.journal.records import (
    ATTEMPT_COLUMNS,
    SELECT_TRANSFERS,
    TIME_COLUMNS,
    TRANSFER_COLUMNS,
    AttemptRecord,
    KeyConflictPolicy,
    SourceIdentity,
    TransferError,
    TransferRecord,
    TransferRow,
    UnrecordedSending,
    aware,
    read_attempts,
    read_transfers,
    read_unrecorded_sending,
    record_of,
    refuse_truncated,
)
from desktop_app.core.model.errors import (
    IllegalMoveError,
    JournalError,
    JournalLockedError,
)
from desktop_app.core.model.states import (
    FINISHED_STATES,
    INITIAL_STATES,
    ErrorKind,
    TransferState,
    move_allowed,
)

__all__ = [
    "FINISHED_STATES",
    "AttemptRecord",
    "ErrorKind",
    "KeyConflictPolicy",
    "SourceIdentity",
    "TransferError",
    "TransferRecord",
    "TransferState",
    "UnrecordedSending",
]

T = TypeVar("T")


@dataclass(frozen=True)
class NewAttempt:
    """An attempt that just ended, to be numbered and kept by the journal."""

    started_at: datetime
    ended_at: datetime
    error: TransferError | None
    bytes_sent: int


@dataclass(frozen=True)
class PartRecord:
    number: int
    offset: int
    size: int
    md5: str | None
    etag: str | None
    confirmed_at: datetime | None

    @property
    def done(self) -> bool:
        return self.confirmed_at is not None


@dataclass(frozen=True)
class PartDigests:
    """What the pre-pass read: the file's SHA-256 and the MD5 of each planned part;
    its CRC64NVME (base64) and each part's (None, (): read before they were kept),
    the upload created to carry them (``crc64nvme_upload_id``), and whether the
    server's checksum of that upload's object was read back equal to it."""

    sha256: str
    part_size: int
    md5s: tuple[bytes, ...]
    crc64nvme: str | None = None
    part_crc64nvmes: tuple[int, ...] = ()
    crc64nvme_upload_id: str | None = None
    crc64nvme_verified: bool = False

    def fits(self, record: TransferRecord) -> bool:
        """Computed for this transfer's content and part plan (not an older one's)?"""
        return (
            self.sha256 == record.sha256
            and self.part_size == record.part_size
            and len(self.md5s) == record.part_count
        )


def _check_birth(new: NewTransfer) -> None:
    """A transfer is born only in an initial state, with what that state needs."""
    if new.state not in INITIAL_STATES:
        raise ValueError(f"a transfer cannot be born {new.state.value}")
    if (new.error is not None) != (new.state is TransferState.FAILED):
        raise ValueError("a transfer is born failed with its error, and only then")
    if new.state is TransferState.UPLOADING and (new.sha256 is None or new.catalog_file_id is None):
        raise ValueError("a transfer born uploading re-sends a known catalog row and hash")


class Unchanged(enum.Enum):
    """A fact a :class:`TransferFacts` leaves as the journal has it."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


@dataclass(frozen=True)
class TransferFacts:
    """Facts of one transfer to write, with or without a state change.

    Each field left :data:`UNCHANGED` keeps its column as it is; ``None``
    clears it. A typed record, not keyword columns: a misspelt fact is an
    error of the type checker, not of a running upload.
    """

    identity: SourceIdentity | Unchanged = UNCHANGED
    key: str | Unchanged = UNCHANGED
    content_type: str | Unchanged = UNCHANGED
    sha256: str | Unchanged | None = UNCHANGED
    part_size: int | Unchanged = UNCHANGED
    part_count: int | Unchanged = UNCHANGED
    catalog_file_id: int | Unchanged | None = UNCHANGED
    reservation_token: str | Unchanged = UNCHANGED
    etag: str | Unchanged | None = UNCHANGED
    duplicate_of: str | Unchanged | None = UNCHANGED
    copy_source_key: str | Unchanged | None = UNCHANGED
    copy_source_etag: str | Unchanged | None = UNCHANGED
    replaces_etag: str | Unchanged | None = UNCHANGED
    version_id: str | Unchanged | None = UNCHANGED
    upload_intent_at: datetime | Unchanged | None = UNCHANGED
    attempts: int | Unchanged = UNCHANGED
    paused: bool | Unchanged = UNCHANGED

    def columns(self) -> dict[str, Any]:
        """The journal's columns these facts set."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is UNCHANGED:
                continue
            if isinstance(value, SourceIdentity):
                values.update(value.columns())
            else:
                values[field.name] = value
        return values


@dataclass(frozen=True)
class NewTransfer:
    source_path: str
    identity: SourceIdentity
    profile: str
    bucket: str
    key: str
    content_type: str
    part_size: int
    part_count: int
    state: TransferState = TransferState.QUEUED
    error: TransferError | None = None
    on_conflict: KeyConflictPolicy = KeyConflictPolicy.FAIL
    sha256: str | None = None  # known already (a repair re-sending a catalog row)
    catalog_file_id: int | None = None
    reservation_token: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    replaces_etag: str | None = None  # a repair replacing the object a person saw


_metadata = MetaData()
transfers = Table(
    "transfers",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_path", Text, nullable=False),
    Column("source_size", BigInteger, nullable=False),
    Column("source_mtime_ns", BigInteger, nullable=False),
    Column("source_device", BigInteger, nullable=False),
    Column("source_inode", BigInteger, nullable=False),
    Column("source_ctime_ns", BigInteger, nullable=False, server_default="0"),
    Column("profile", String(64), nullable=False),
    Column("bucket", String(63), nullable=False),
    Column("key", Text, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("sha256", String(64)),
    Column("part_size", BigInteger, nullable=False),
    Column("part_count", Integer, nullable=False),
    Column("upload_id", Text),
    Column("catalog_file_id", BigInteger),
    Column("etag", String(80)),
    Column("duplicate_of", Text),
    Column("state", String(16), nullable=False),
    Column("paused", Boolean, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error_kind", String(32)),
    Column("error_title", Text),
    Column("error_message", Text),
    Column("error_cause", String(32)),  # an ErrorCause; NULL: no error
    Column("retry_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("on_conflict", String(16), nullable=False),
    Column("reservation_token", String(32)),
    Column("upload_intent_at", DateTime(timezone=True)),
    Column("copy_source_key", Text),
    Column("copy_source_etag", String(80)),
    Column("replaces_etag", String(80)),  # see TransferRecord.replaces_etag
    Column("version_id", String(1024)),  # see TransferRecord.version_id
    Column("cleared_at", DateTime(timezone=True)),  # hidden from the window, kept here
)
parts = Table(
    "parts",
    _metadata,
    Column("transfer_id", Integer, primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("offset", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("md5", String(32)),
    Column("etag", String(80)),
    Column("confirmed_at", DateTime(timezone=True)),
)
# The pre-pass's MD5 of each planned part, 16 bytes each in part order: the
# sending pass sends them as Content-MD5 and so needs not hash again. Kept
# with the SHA-256 and part size they were computed for; anything else is stale.
part_digests = Table(
    "part_digests",
    _metadata,
    Column("transfer_id", Integer, primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("part_size", BigInteger, nullable=False),
    Column("md5s", LargeBinary, nullable=False),
    # j0011: the CRC64NVMEs of the same read, and the upload that carries them.
    Column("crc64nvme", String(16)),
    Column("part_crc64nvmes", LargeBinary),
    Column("crc64nvme_upload_id", String(1024)),
    Column("crc64nvme_verified", Boolean),  # j0012
)
attempts = Table(
    "attempts",
    _metadata,
    Column("transfer_id", Integer, primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=False),
    Column("error_kind", String(32)),
    Column("error_title", Text),
    Column("error_message", Text),
    Column("error_cause", String(32)),
    Column("bytes_sent", BigInteger, nullable=False),
)


# The hot statements (a transfer's moves and reads, thousands per minute for
# small files) go to sqlite3 directly: SQLAlchemy's statement building and
# result processing cost more than SQLite's own work there. Times are stored
# as SQLAlchemy stores them (UTC, "YYYY-MM-DD HH:MM:SS.ffffff"). The columns
# the SQL names are journal_records' (which loads no SQLAlchemy, for `ferry
# status`): checked against the tables above at import, so both stay one schema.
_TABLE_TIME_COLUMNS = {c.name for c in transfers.c if isinstance(c.type, DateTime)}
if (
    tuple(c.name for c in transfers.c) != TRANSFER_COLUMNS
    or _TABLE_TIME_COLUMNS != TIME_COLUMNS
    or tuple(c.name for c in attempts.c) != ATTEMPT_COLUMNS
):
    raise RuntimeError("journal_records' columns no longer match the journal's tables")
_RETURNING = f" RETURNING {', '.join(TRANSFER_COLUMNS)}"
_INSERT_ATTEMPT = (
    "INSERT INTO attempts (transfer_id, number, started_at, ended_at, error_kind, "
    "error_title, error_message, error_cause, bytes_sent) VALUES (?, (SELECT "
    "coalesce(max(number), 0) + 1 FROM attempts WHERE transfer_id = ?), ?, ?, ?, ?, ?, ?, ?)"
)


# For each target state, the states a transfer may move to it from.
_SOURCES = {
    target: tuple(s.value for s in TransferState if move_allowed(s, target))
    for target in TransferState
}


def _sqlite_time(moment: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores: naive UTC, microseconds always."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(" ", "microseconds")


def _sql_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _sqlite_time(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _cursor(connection: Connection) -> Any:
    """A sqlite3 cursor inside the SQLAlchemy connection's transaction."""
    return connection.connection.driver_connection.cursor()  # type: ignore[union-attr]


@functools.cache
def _update_sql(columns: tuple[str, ...], guarded_states: int) -> str:
    for column in columns:
        if column not in TRANSFER_COLUMNS:
            raise ValueError(f"the journal has no column {column!r}")
    assignments = ", ".join(f"{column} = ?" for column in columns)
    guard = f" AND state IN ({', '.join('?' * guarded_states)})" if guarded_states else ""
    return f"UPDATE transfers SET {assignments} WHERE id = ?{guard}{_RETURNING}"


@functools.cache
def _insert_sql(columns: tuple[str, ...]) -> str:
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO transfers ({names}) VALUES ({marks}){_RETURNING}"


def _waiting_retry(profiles: Iterable[str]) -> Any:
    """Failed, of these profiles, for a reason the scheduler retries on its own."""
    return and_(
        transfers.c.profile.in_(list(profiles)),
        transfers.c.state == TransferState.FAILED.value,
        transfers.c.error_kind.in_([k.value for k in ErrorKind if k.retries_on_its_own]),
    )


def _error_columns(error: TransferError | None) -> dict[str, str | None]:
    return {
        "error_kind": error.kind.value if error else None,
        "error_title": error.title if error else None,
        "error_message": error.message if error else None,
        "error_cause": error.cause.value if error else None,
    }


def _insert_attempt(cursor: Any, transfer_id: int, attempt: NewAttempt) -> None:
    error = _error_columns(attempt.error)
    cursor.execute(
        _INSERT_ATTEMPT,
        (
            transfer_id,
            transfer_id,
            _sqlite_time(attempt.started_at),
            _sqlite_time(attempt.ended_at),
            error["error_kind"],
            error["error_title"],
            error["error_message"],
            error["error_cause"],
            attempt.bytes_sent,
        ),
    )


def _create_if_missing(path: Path) -> None:
    """A new journal appears whole: an empty SQLite database in WAL mode, linked in at once.

    The lock is taken on the journal file, so it must exist first; made in
    place it would be 0 bytes until the first commit, and a crash then would
    leave what :func:`refuse_truncated` rightly takes for a truncated journal.
    """
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.new")
    try:
        with contextlib.closing(sqlite3.connect(temp)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")  # writes the database header
        with contextlib.suppress(FileExistsError):  # another Ferry made it meanwhile
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _cannot_open(path: Path, exc: BaseException) -> JournalError:
    folder = path.parent
    reason = unwritable(folder)
    if reason is not None:
        return JournalError(
            f"The data folder {folder} {reason}, so Ferry cannot keep its journal "
            f"({path.name}) there. Make it writable (remount the disk read-write, or "
            f"`chmod u+w {folder}`), or set FERRY_HOME to a folder you can write.",
            title="Data folder is read-only",
        )
    return JournalError(
        f"The journal {path} cannot be opened ({type(exc).__name__}: {exc}). If the "
        f"disk is full, free space; if the file is damaged, move it aside (`mv {path} "
        f"{path}.broken`) and Ferry starts a new one: transfers it held are then "
        "forgotten (their files are still on disk)."
    )


# Room the journal wants free to go on: its WAL grows by pages per commit.
_ROOM_NEEDED = 8 * 1024 * 1024


class Journal:
    """Typed access to the transfers and parts tables."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], datetime] | None = None,
        read_only: bool = False,
    ) -> None:
        """Open the journal; ``read_only`` reads beside a running Ferry (no lock, no writes)."""
        self.path = path
        self.read_only = read_only
        self.clock = clock or (lambda: datetime.now(UTC))
        # The lock is held on the journal file itself (Linux), so deleting
        # journal.lock lets no second Ferry in; journal.lock names the holder.
        self._lock = PidLock(path.with_suffix(".lock"), guarding=path)
        self._writer: GroupCommitter[Connection] | None = None
        self._writer_connection: WriterConnection | None = None
        if read_only:
            self._open_read_only()
            return
        try:
            refuse_truncated(path)
            _create_if_missing(path)
            self._lock.acquire()
        except LockHeld as held:
            raise JournalLockedError(
                f"Another Ferry (pid {held.holder or 'unknown'}) is using the journal "
                f"{path.parent}. Let it finish, or hand it your files; only one Ferry runs "
                "at a time."
            ) from held
        except (OSError, sqlite3.Error) as exc:  # sqlite3: making a new journal
            raise _cannot_open(path, exc) from exc
        try:
            # The path as it is: in a URL string a "?" or "#" in a folder name would cut it.
            self.engine = create_engine(
                URL.create("sqlite", database=str(path)), connect_args={"timeout": 30}
            )
            migrate.make_sqlite_durable(self.engine)
            with self.engine.connect() as connection:
                if not migrate.revisions(connection, Schema.JOURNAL).up_to_date:
                    migrate.upgrade(connection, Schema.JOURNAL)
            self._writer_connection = writer = WriterConnection(self.engine)
            self._writer = GroupCommitter(
                writer.begin,
                functools.partial(self._write_alone, writer),
                name="ferry-journal",
                most=512,
            )
        except (SQLAlchemyError, OSError) as exc:
            self._lock.release()
            raise _cannot_open(path, exc) from exc
        except BaseException:
            self._lock.release()
            raise

    def _open_read_only(self) -> None:
        refuse_truncated(self.path)
        if not self.path.exists():
            # Nothing was ever queued here: an empty journal in memory says so.
            self.engine = create_engine("sqlite://")
            _metadata.create_all(self.engine)
            return
        # SQLite reads the file name as a URI: quoted, and not parsed as a URL first.
        self.engine = create_engine(
            URL.create(
                "sqlite",
                database=f"file:{quote(str(self.path))}",
                query={"mode": "ro", "uri": "true"},
            ),
            connect_args={"timeout": 30, "uri": True},
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()
        if self._writer_connection is not None:
            self._writer_connection.close()
        self.engine.dispose()
        self._lock.release()

    def _write(self, op: Callable[[Connection], T]) -> T:
        if self._writer is None:
            raise JournalError(
                f"The journal {self.path} was opened for reading only (another Ferry runs); "
                "nothing was changed."
            )
        return self._writer.run(op)

    def _write_alone(
        self, writer: WriterConnection, _label: str, op: Callable[[Connection], T]
    ) -> T:
        try:
            with writer.begin() as connection:
                return op(connection)
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise self._write_error(exc) from exc

    def _write_error(self, exc: Exception) -> JournalError:
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            free = -1
        if 0 <= free < _ROOM_NEEDED:
            return JournalError(
                f"The disk holding {self.path.parent} is full ({free // 1024} KiB free); "
                f"Ferry needs about {_ROOM_NEEDED >> 20} MiB there to record transfers, so it "
                "stopped sending. Nothing is lost: free some space, then run `ferry resume`.",
                title="Disk full",
            )
        return JournalError(
            f"Writing the journal {self.path} failed ({type(exc).__name__}). Check the disk; "
            "Ferry stops rather than lose track of a transfer, and `ferry resume` goes on "
            "from what was recorded."
        )

    def _read_raw(self, sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
        try:
            connection = self.engine.raw_connection()
            try:
                return list(connection.cursor().execute(sql, list(params)))
            finally:
                connection.close()
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise JournalError(f"Reading the journal failed ({type(exc).__name__}).") from exc

    def _read(self, statement: Any) -> list[Any]:
        try:
            with self.engine.connect() as connection:
                return list(connection.execute(statement))
        except SQLAlchemyError as exc:
            raise JournalError(f"Reading the journal failed ({type(exc).__name__}).") from exc

    # -- transfers ----------------------------------------------------------

    def add(self, new: NewTransfer) -> TransferRecord:
        return self.add_many([new])[0]

    def add_many(self, news: list[NewTransfer]) -> list[TransferRecord]:
        """Queue many transfers in one transaction (a drop of 10,000 files is one commit)."""
        if not news:
            return []
        for new in news:
            _check_birth(new)
        now = self.clock()
        values = [
            {
                "source_path": new.source_path,
                **new.identity.columns(),
                "profile": new.profile,
                "bucket": new.bucket,
                "key": new.key,
                "content_type": new.content_type,
                "part_size": new.part_size,
                "part_count": new.part_count,
                "state": new.state.value,
                "paused": False,
                "attempts": 0,
                **_error_columns(new.error),
                "created_at": now,
                "updated_at": now,
                "on_conflict": new.on_conflict.value,
                "sha256": new.sha256,
                "catalog_file_id": new.catalog_file_id,
                "reservation_token": new.reservation_token,
                "replaces_etag": new.replaces_etag,
            }
            for new in news
        ]
        columns = tuple(values[0])
        sql = _insert_sql(columns)
        rows = [[_sql_value(row[column]) for column in columns] for row in values]

        def op(connection: Connection) -> list[TransferRecord]:
            cursor = _cursor(connection)
            return [record_of(TransferRow(cursor.execute(sql, row).fetchone())) for row in rows]

        return self._write(op)

    def get(self, transfer_id: int) -> TransferRecord:
        found = self.get_many([transfer_id])
        if not found:
            raise JournalError(f"There is no transfer {transfer_id} in the journal.")
        return found[0]

    def get_many(self, transfer_ids: Iterable[int]) -> list[TransferRecord]:
        """Several transfers in few queries, in the order asked (missing ones left out)."""
        ids = list(transfer_ids)
        found: dict[int, TransferRecord] = {}
        for start in range(0, len(ids), 500):  # SQLite's limit on bound values
            chunk = ids[start : start + 500]
            sql = f"{SELECT_TRANSFERS} WHERE id IN ({', '.join('?' * len(chunk))})"
            for values in self._read_raw(sql, chunk):
                record = record_of(TransferRow(values))
                found[record.id] = record
        return [found[i] for i in ids if i in found]

    def all(self, states: Iterable[TransferState] | None = None) -> list[TransferRecord]:
        return read_transfers(self._read_raw, states)

    def window_history(self, finished_kept: int) -> list[TransferRecord]:
        """What a window shows at start: every unfinished transfer and the newest
        ``finished_kept`` finished ones not cleared, oldest first."""
        finished = [s.value for s in FINISHED_STATES]
        unfinished = select(transfers).where(transfers.c.state.not_in(finished))
        recent = (
            select(transfers.c.id)
            .where(transfers.c.state.in_(finished), transfers.c.cleared_at.is_(None))
            .order_by(transfers.c.id.desc())
            .limit(finished_kept)
        )
        kept = select(transfers).where(transfers.c.id.in_(recent))
        rows = [*self._read(unfinished), *self._read(kept)]
        return sorted((record_of(row) for row in rows), key=lambda record: record.id)

    def clear_finished(self, transfer_ids: Iterable[int]) -> int:
        """Hide these finished transfers from the window; the history keeps them."""
        ids = list(transfer_ids)
        now = self.clock()

        def op(connection: Connection) -> int:
            cleared = 0
            for start in range(0, len(ids), 500):  # SQLite's limit on bound values
                statement = (
                    update(transfers)
                    .where(
                        transfers.c.id.in_(ids[start : start + 500]),
                        transfers.c.state.in_([s.value for s in FINISHED_STATES]),
                        transfers.c.cleared_at.is_(None),
                    )
                    .values(cleared_at=now)
                )
                cleared += int(connection.execute(statement).rowcount)
            return cleared

        return self._write(op) if ids else 0

    def runnable(self, profiles: Iterable[str], now: datetime) -> list[TransferRecord]:
        """What a scheduler for these profiles should run now, oldest first.

        In progress and not paused, or failed for a reason that is retried on
        its own once its next try time has come. Another profile's transfers
        are never returned: only that profile's client and catalog may run them.
        """
        statement = select(transfers).where(self._runnable(profiles, now)).order_by(transfers.c.id)
        return [record_of(row) for row in self._read(statement)]

    def runnable_sizes(self, profiles: Iterable[str], now: datetime) -> list[tuple[int, int]]:
        """(id, size) of what :meth:`runnable` returns: all a dispatcher needs, cheaply."""
        statement = (
            select(transfers.c.id, transfers.c.source_size)
            .where(self._runnable(profiles, now))
            .order_by(transfers.c.id)
        )
        return [(row.id, row.source_size) for row in self._read(statement)]

    @staticmethod
    def _runnable(profiles: Iterable[str], now: datetime) -> Any:
        profiles = list(profiles)
        return and_(
            transfers.c.profile.in_(profiles),
            transfers.c.paused.is_(False),
            or_(
                transfers.c.state.in_([s.value for s in TransferState if s.in_progress]),
                and_(
                    _waiting_retry(profiles),
                    or_(transfers.c.retry_at.is_(None), transfers.c.retry_at <= now),
                ),
            ),
        )

    def next_retry_at(self, profiles: Iterable[str]) -> datetime | None:
        """The earliest next try time among failures retried on their own."""
        rows = self._read(
            select(transfers.c.retry_at)
            .where(
                _waiting_retry(profiles),
                transfers.c.paused.is_(False),
                transfers.c.retry_at.is_not(None),
            )
            .order_by(transfers.c.retry_at)
            .limit(1)
        )
        return aware(rows[0].retry_at) if rows else None

    def retry_now(self, profiles: Iterable[str], now: datetime) -> int:
        """Bring every waiting automatic retry forward to now (the server is back)."""
        statement = update(transfers).where(_waiting_retry(profiles)).values(retry_at=now)

        def op(connection: Connection) -> int:
            return int(connection.execute(statement).rowcount)

        return self._write(op)

    def latest_for_source(self, source_path: str, profile: str) -> TransferRecord | None:
        rows = self._read(
            select(transfers)
            .where(transfers.c.source_path == source_path, transfers.c.profile == profile)
            .order_by(transfers.c.id.desc())
            .limit(1)
        )
        return record_of(rows[0]) if rows else None

    def update(self, transfer_id: int, facts: TransferFacts) -> TransferRecord:
        """Set facts of one transfer (never its state: that is :meth:`move`)."""
        return self._update(transfer_id, None, facts.columns())

    def move(
        self,
        transfer_id: int,
        target: TransferState,
        *,
        error: TransferError | None = None,
        retry_at: datetime | None = None,
        attempt: NewAttempt | None = None,
        facts: TransferFacts | None = None,
    ) -> TransferRecord:
        """The one writer of transfer state: checked against the table of allowed moves.

        The check and the write are one transaction, so two threads cannot both
        move a transfer out of the same state. A failure keeps its error and
        next try time; any other state clears them. An attempt, when given, is
        recorded in the same commit.
        """
        if (error is not None) != (target is TransferState.FAILED):
            raise ValueError("an error goes with the failed state, and only with it")
        values = facts.columns() if facts is not None else {}
        values.update(state=target.value, retry_at=retry_at, **_error_columns(error))
        return self._update(transfer_id, (target, attempt), values)

    def _update(
        self,
        transfer_id: int,
        move: tuple[TransferState, NewAttempt | None] | None,
        values: dict[str, Any],
    ) -> TransferRecord:
        values["updated_at"] = self.clock()
        columns = tuple(values)
        params: list[Any] = [_sql_value(values[c]) for c in columns]
        params.append(transfer_id)
        if move is not None:
            # The check is the UPDATE's own condition: no row is written unless
            # the current state may move to the target, in one statement.
            sources = _SOURCES[move[0]]
            params.extend(sources)
        sql = _update_sql(columns, len(sources) if move is not None else 0)

        def op(connection: Connection) -> TransferRecord:
            cursor = _cursor(connection)
            row = cursor.execute(sql, params).fetchone()
            if row is None:
                found = cursor.execute(
                    "SELECT state FROM transfers WHERE id = ?", (transfer_id,)
                ).fetchone()
                if found is None:
                    raise JournalError(f"There is no transfer {transfer_id} in the journal.")
                assert move is not None
                raise IllegalMoveError(transfer_id, TransferState(found[0]), move[0])
            if move is not None and move[1] is not None:
                _insert_attempt(cursor, transfer_id, move[1])
            return record_of(TransferRow(row))

        return self._write(op)

    def attempts_of(self, transfer_ids: Iterable[int]) -> dict[int, list[AttemptRecord]]:
        return read_attempts(self._read_raw, transfer_ids)

    def unrecorded_sending(self, transfer_ids: Iterable[int]) -> dict[int, list[UnrecordedSending]]:
        """Per transfer, the stretches of confirmed parts no recorded attempt covers
        (attempts cut by a pause or a stop), in time order: see :class:`UnrecordedSending`."""
        return read_unrecorded_sending(self._read_raw, transfer_ids)

    def set_paused(self, transfer_ids: Iterable[int] | None, paused: bool) -> int:
        """Pause or let go unfinished transfers; how many changed.

        A failed transfer that waits for a person (bad input, access denied)
        is not paused: nothing of it runs until the person acts anyway. One
        already as asked is not counted.
        """
        waits_for_a_person = and_(
            transfers.c.state == TransferState.FAILED.value,
            or_(
                transfers.c.error_kind.is_(None),
                transfers.c.error_kind.not_in([k.value for k in ErrorKind if k.retries_on_its_own]),
            ),
        )
        statement = update(transfers).values(paused=paused, updated_at=self.clock())
        statement = statement.where(
            transfers.c.state.in_([s.value for s in TransferState if not s.finished]),
            transfers.c.paused != paused,
            ~waits_for_a_person if paused else true(),
        )
        if transfer_ids is not None:
            statement = statement.where(transfers.c.id.in_(list(transfer_ids)))

        def op(connection: Connection) -> int:
            return int(connection.execute(statement).rowcount)

        return self._write(op)

    # -- parts --------------------------------------------------------------

    def plan_parts(
        self, transfer_id: int, upload_id: str, plan: list[tuple[int, int, int]]
    ) -> None:
        """Commit the upload id and the part plan (number, offset, size) together."""
        now = self.clock()

        def op(connection: Connection) -> Any:
            connection.execute(delete(parts).where(parts.c.transfer_id == transfer_id))
            connection.execute(
                insert(parts),
                [
                    {"transfer_id": transfer_id, "number": n, "offset": o, "size": s}
                    for n, o, s in plan
                ],
            )
            connection.execute(
                update(transfers)
                .where(transfers.c.id == transfer_id)
                .values(
                    upload_id=upload_id, part_count=len(plan), upload_intent_at=None, updated_at=now
                )
            )

        self._write(op)

    def parts(self, transfer_id: int) -> list[PartRecord]:
        rows = self._read(
            select(parts).where(parts.c.transfer_id == transfer_id).order_by(parts.c.number)
        )
        return [
            PartRecord(r.number, r.offset, r.size, r.md5, r.etag, aware(r.confirmed_at))
            for r in rows
        ]

    def confirm_part(self, transfer_id: int, number: int, md5: str, etag: str) -> None:
        def op(connection: Connection) -> Any:
            connection.execute(
                update(parts)
                .where(parts.c.transfer_id == transfer_id, parts.c.number == number)
                .values(md5=md5, etag=etag, confirmed_at=self.clock())
            )

        self._write(op)

    def unconfirm_part(self, transfer_id: int, number: int) -> None:
        def op(connection: Connection) -> Any:
            connection.execute(
                update(parts)
                .where(parts.c.transfer_id == transfer_id, parts.c.number == number)
                .values(etag=None, confirmed_at=None)
            )

        self._write(op)

    def save_part_digests(self, transfer_id: int, digests: PartDigests) -> None:
        row = {
            "transfer_id": transfer_id,
            "sha256": digests.sha256,
            "part_size": digests.part_size,
            "md5s": b"".join(digests.md5s),
            "crc64nvme": digests.crc64nvme,
            "part_crc64nvmes": b"".join(c.to_bytes(8, "big") for c in digests.part_crc64nvmes)
            if digests.crc64nvme is not None
            else None,
            "crc64nvme_upload_id": digests.crc64nvme_upload_id,
            "crc64nvme_verified": digests.crc64nvme_verified,
        }

        def op(connection: Connection) -> Any:
            stale = delete(part_digests).where(part_digests.c.transfer_id == transfer_id)
            connection.execute(stale)
            connection.execute(insert(part_digests), [row])

        self._write(op)

    def part_digests(self, transfer_id: int) -> PartDigests | None:
        rows = self._read(select(part_digests).where(part_digests.c.transfer_id == transfer_id))
        if not rows:
            return None
        row = rows[0]
        blob = bytes(row.md5s)
        md5s = tuple(blob[i : i + 16] for i in range(0, len(blob), 16))
        crcs = bytes(row.part_crc64nvmes or b"")
        part_crcs = tuple(int.from_bytes(crcs[i : i + 8], "big") for i in range(0, len(crcs), 8))
        return PartDigests(
            row.sha256,
            row.part_size,
            md5s,
            row.crc64nvme,
            part_crcs,
            row.crc64nvme_upload_id,
            bool(row.crc64nvme_verified),
        )

    def forget_upload(self, transfer_id: int) -> None:
        """Drop the upload, its parts and the object's ETag and version in one commit:
        the next attempt sends the bytes afresh (its resume point goes back to sending)."""
        now = self.clock()

        def op(connection: Connection) -> Any:
            connection.execute(delete(parts).where(parts.c.transfer_id == transfer_id))
            connection.execute(
                update(transfers)
                .where(transfers.c.id == transfer_id)
                .values(upload_id=None, etag=None, version_id=None, updated_at=now)
            )

        self._write(op)

    def latest_done_for_key(self, bucket: str, key: str) -> TransferRecord | None:
        """The last finished upload of this key: where its source file was."""
        rows = self._read(
            select(transfers)
            .where(
                transfers.c.bucket == bucket,
                transfers.c.key == key,
                transfers.c.state == TransferState.DONE.value,
            )
            .order_by(transfers.c.id.desc())
            .limit(1)
        )
        return record_of(rows[0]) if rows else None

    def in_flight_keys(self, bucket: str) -> set[str]:
        rows = self._read(
            select(transfers.c.key).where(
                transfers.c.bucket == bucket,
                transfers.c.state.in_([s.value for s in TransferState if s.in_progress]),
            )
        )
        return {row.key for row in rows}

    def upload_ids(self) -> set[str]:
        """Multipart upload ids that unfinished transfers still own."""
        rows = self._read(
            select(transfers.c.upload_id).where(
                transfers.c.upload_id.is_not(None),
                transfers.c.state.in_([s.value for s in TransferState if not s.finished]),
            )
        )
        return {row.upload_id for row in rows}
