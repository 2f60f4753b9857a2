"""The journal's rows read into records, and the journal file read through sqlite3 alone.

The reads that make a transfer, its attempts and the sending no attempt
recorded (:class:`TransferRecord`, :class:`AttemptRecord`,
:class:`UnrecordedSending`, defined in :mod:`desktop_app.core.model.transfer_records`
and re-exported here) from rows. The
:class:`~desktop_app.core.journal.store.Journal` (SQLAlchemy, Alembic, the one
writer) reads through the same functions; :class:`JournalReader` reads the
file with nothing else loaded, for the commands that only look (`ferry
status`): it writes nothing, takes no lock, and works beside a running Ferry.

Times are stored as SQLAlchemy stores them (UTC, "YYYY-MM-DD HH:MM:SS.ffffff")
and read back as aware UTC datetimes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from desktop_app.core.model.errors import ErrorCause, JournalError
from desktop_app.core.model.states import ErrorKind, TransferState

# The record types are the model layer's; re-exported for the journal's readers.
from desktop_app.core.model.transfer_records import AttemptRecord as AttemptRecord
from desktop_app.core.model.transfer_records import KeyConflictPolicy as KeyConflictPolicy
from desktop_app.core.model.transfer_records import SourceIdentity as SourceIdentity
from desktop_app.core.model.transfer_records import TransferError as TransferError
from desktop_app.core.model.transfer_records import TransferRecord as TransferRecord
from desktop_app.core.model.transfer_records import UnrecordedSending as UnrecordedSending

# The columns of the transfers table, in its order (journal.py checks them
# against its Table at import, so the two stay one schema).
TRANSFER_COLUMNS = (
    "id",
    "source_path",
    "source_size",
    "source_mtime_ns",
    "source_device",
    "source_inode",
    "source_ctime_ns",
    "profile",
    "bucket",
    "key",
    "content_type",
    "sha256",
    "part_size",
    "part_count",
    "upload_id",
    "catalog_file_id",
    "etag",
    "duplicate_of",
    "state",
    "paused",
    "attempts",
    "error_kind",
    "error_title",
    "error_message",
    "error_cause",
    "retry_at",
    "created_at",
    "updated_at",
    "on_conflict",
    "reservation_token",
    "upload_intent_at",
    "copy_source_key",
    "copy_source_etag",
    "replaces_etag",
    "version_id",
    "cleared_at",
)
TIME_COLUMNS = frozenset({"retry_at", "created_at", "updated_at", "upload_intent_at", "cleared_at"})
SELECT_TRANSFERS = f"SELECT {', '.join(TRANSFER_COLUMNS)} FROM transfers"
ATTEMPT_COLUMNS = (
    "transfer_id",
    "number",
    "started_at",
    "ended_at",
    "error_kind",
    "error_title",
    "error_message",
    "error_cause",
    "bytes_sent",
)
_SELECT_ATTEMPTS = f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM attempts"
# SQLite's limit on bound values, kept well below.
_CHUNK = 500


class TransferRow:
    """A transfers row read through sqlite3: columns as attributes, times parsed."""

    def __init__(self, values: tuple[Any, ...]) -> None:
        for name, value in zip(TRANSFER_COLUMNS, values, strict=True):
            if name in TIME_COLUMNS and value is not None:
                value = datetime.fromisoformat(value)
            setattr(self, name, value)


def aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def record_of(row: Any) -> TransferRecord:
    created, updated = aware(row.created_at), aware(row.updated_at)
    assert created is not None
    assert updated is not None
    return TransferRecord(
        id=row.id,
        source_path=row.source_path,
        identity=SourceIdentity(
            row.source_size,
            row.source_mtime_ns,
            row.source_device,
            row.source_inode,
            row.source_ctime_ns,
        ),
        profile=row.profile,
        bucket=row.bucket,
        key=row.key,
        content_type=row.content_type,
        sha256=row.sha256,
        part_size=row.part_size,
        part_count=row.part_count,
        upload_id=row.upload_id,
        catalog_file_id=row.catalog_file_id,
        etag=row.etag,
        duplicate_of=row.duplicate_of,
        state=TransferState(row.state),
        paused=bool(row.paused),
        attempts=row.attempts,
        error=error_of(row),
        retry_at=aware(row.retry_at),
        created_at=created,
        updated_at=updated,
        on_conflict=KeyConflictPolicy(row.on_conflict),
        reservation_token=row.reservation_token,
        upload_intent_at=aware(row.upload_intent_at),
        copy_source_key=row.copy_source_key,
        copy_source_etag=row.copy_source_etag,
        replaces_etag=row.replaces_etag,
        version_id=row.version_id,
    )


def error_of(row: Any) -> TransferError | None:
    if not row.error_message:
        return None
    return TransferError(
        ErrorKind.parse(row.error_kind),
        row.error_title or "",
        row.error_message,
        ErrorCause.parse(row.error_cause),
    )


def attempt_of(row: Any) -> AttemptRecord:
    started, ended = aware(row.started_at), aware(row.ended_at)
    assert started is not None
    assert ended is not None
    return AttemptRecord(row.number, started, ended, error_of(row), row.bytes_sent)


def _unrecorded(
    confirmed: list[tuple[datetime, int]], recorded: list[AttemptRecord]
) -> list[UnrecordedSending]:
    """Group the part confirmations (time order) that fall in no recorded attempt by
    the recorded attempt they came after."""
    stretches: dict[int, list[tuple[datetime, int]]] = {}
    for at, size in confirmed:
        if any(a.started_at <= at <= a.ended_at for a in recorded):
            continue
        after = max((a.number for a in recorded if a.ended_at < at), default=0)
        stretches.setdefault(after, []).append((at, size))
    return [
        UnrecordedSending(after, found[0][0], found[-1][0], len(found), sum(s for _, s in found))
        for after, found in sorted(stretches.items())
    ]


def refuse_truncated(path: Path) -> None:
    """A journal that exists but holds nothing was truncated: never start over silently."""
    if path.exists() and path.stat().st_size == 0:
        raise JournalError(
            f"The journal {path} is empty (0 bytes): it was truncated or damaged, and the "
            "transfers it held cannot be read. Ferry will not start over silently. If you "
            f"accept that, move it aside (`mv {path} {path}.broken`) and start Ferry again."
        )


class _AttemptRow:
    """An attempts row read through sqlite3: columns as attributes, times parsed."""

    transfer_id: int

    def __init__(self, values: tuple[Any, ...]) -> None:
        for name, value in zip(ATTEMPT_COLUMNS, values, strict=True):
            if name in ("started_at", "ended_at"):
                value = datetime.fromisoformat(value)
            setattr(self, name, value)


# How a journal is read: SQL and its parameters in, rows out (errors already
# Ferry's JournalError). The Journal passes its engine's, the reader its own.
Read = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


def read_transfers(
    read: Read, states: Iterable[TransferState] | None = None
) -> list[TransferRecord]:
    """Every transfer (or those in ``states``), oldest first."""
    if states is None:
        rows = read(f"{SELECT_TRANSFERS} ORDER BY id", ())
    else:
        values = [s.value for s in states]
        marks = ", ".join("?" * len(values))
        rows = read(f"{SELECT_TRANSFERS} WHERE state IN ({marks}) ORDER BY id", values)
    return [record_of(TransferRow(values)) for values in rows]


def read_attempts(read: Read, transfer_ids: Iterable[int]) -> dict[int, list[AttemptRecord]]:
    """The recorded attempts of each transfer, in the order they were made."""
    ids = list(transfer_ids)
    found: dict[int, list[AttemptRecord]] = {i: [] for i in ids}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = read(
            f"{_SELECT_ATTEMPTS} WHERE transfer_id IN ({', '.join('?' * len(chunk))}) "
            "ORDER BY transfer_id, number",
            chunk,
        )
        for values in rows:
            row = _AttemptRow(values)
            found[row.transfer_id].append(attempt_of(row))
    return found


def read_unrecorded_sending(
    read: Read, transfer_ids: Iterable[int]
) -> dict[int, list[UnrecordedSending]]:
    """Per transfer, the stretches of confirmed parts no recorded attempt covers
    (attempts cut by a pause or a stop), in time order: see :class:`UnrecordedSending`."""
    ids = list(transfer_ids)
    recorded = read_attempts(read, ids)
    confirmed: dict[int, list[tuple[datetime, int]]] = {i: [] for i in ids}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = read(
            "SELECT transfer_id, size, confirmed_at FROM parts "
            f"WHERE transfer_id IN ({', '.join('?' * len(chunk))}) AND confirmed_at IS NOT NULL "
            "ORDER BY transfer_id, confirmed_at",
            chunk,
        )
        for transfer_id, size, confirmed_at in rows:
            at = aware(datetime.fromisoformat(confirmed_at))
            assert at is not None
            confirmed[transfer_id].append((at, int(size)))
    return {i: _unrecorded(confirmed[i], recorded[i]) for i in ids}


def read_failure(exc: Exception) -> JournalError:
    return JournalError(f"Reading the journal failed ({type(exc).__name__}).")


class JournalReader:
    """The journal file, read only, through sqlite3 and nothing heavier.

    What a read-only :class:`~desktop_app.core.journal.store.Journal` answers, the
    same way: no lock, nothing written, no migration (a journal is upgraded by
    the Ferry that writes it); a journal that does not exist yet holds no
    transfers; an empty (truncated) file is refused. The file is opened at the
    first read, so an unreadable one says so as a read that failed.
    """

    def __init__(self, path: Path) -> None:
        refuse_truncated(path)
        self.path = path
        self._connection: sqlite3.Connection | None = None

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self._connection is None:
            if not self.path.exists():
                return []  # nothing was ever queued here
            try:
                self._connection = sqlite3.connect(
                    f"file:{quote(str(self.path))}?mode=ro", uri=True, timeout=30
                )
            except sqlite3.Error as exc:
                raise read_failure(exc) from exc
        try:
            return list(self._connection.execute(sql, list(params)))
        except sqlite3.Error as exc:
            raise read_failure(exc) from exc

    def all(self, states: Iterable[TransferState] | None = None) -> list[TransferRecord]:
        return read_transfers(self._read, states)

    def attempts_of(self, transfer_ids: Iterable[int]) -> dict[int, list[AttemptRecord]]:
        return read_attempts(self._read, transfer_ids)

    def unrecorded_sending(self, transfer_ids: Iterable[int]) -> dict[int, list[UnrecordedSending]]:
        return read_unrecorded_sending(self._read, transfer_ids)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
