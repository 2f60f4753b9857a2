"""The catalog's values as the rest of Ferry sees them: plain frozen dataclasses.

No database here: :mod:`catalog` turns its rows into these and takes these
as requests, so callers never hold a session or an ORM object.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Row

from desktop_app.core.catalog.schema import (
    AuditAction,
    FileRow,
    FileStatus,
    OutboxEventType,
    OutboxRow,
)

# Touched this recently (on the catalog's clock) by its uploading Ferry, a
# pending row is alive whatever a check's grace period; uploads touch their
# rows every 30 s.
ALIVE_SECONDS = 120


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
    copied_from: str | None = None
    alive_at: datetime | None = None
    endpoint: str | None = None
    # The version of the object Ferry wrote, where the bucket keeps versions.
    version_id: str | None = None
    # The full-object checksum the server verified and Ferry read back equal to
    # its own (base64), and its type ("CRC64NVME"); None on the MD5 path.
    checksum: str | None = None
    checksum_type: str | None = None

    @classmethod
    def from_row(cls, row: FileRow | Row[Any]) -> FileRecord:
        return cls.from_columns([getattr(row, name) for name in RECORD_COLUMNS])

    @classmethod
    def from_columns(cls, values: Sequence[Any]) -> FileRecord:
        """From the values of :data:`RECORD_COLUMNS`, in that order.

        What streams many rows selects those columns and comes here: reading a
        Row by position is a third of the cost of reading it by name.
        """
        (
            id_, bucket, key, owner, original_name, size, sha256, etag, content_type,
            status, created, uploaded, deleted, deleted_by, last_error, copied_from,
            alive, endpoint, version_id, checksum, checksum_type,
        ) = values  # fmt: skip
        return cls(
            id_,
            bucket,
            key,
            owner,
            original_name,
            size,
            sha256,
            etag,
            content_type,
            _STATUSES[status],
            aware(created),
            aware(uploaded) if uploaded else None,
            aware(deleted) if deleted else None,
            deleted_by,
            last_error,
            copied_from,
            aware(alive) if alive else None,
            endpoint,
            version_id,
            checksum,
            checksum_type,
        )

    @property
    def live(self) -> bool:
        return self.status is not FileStatus.DELETED


# The files table's columns a FileRecord is made of, in its fields' order.
RECORD_COLUMNS = tuple(f.name for f in fields(FileRecord))
_STATUSES = {status.value: status for status in FileStatus}


def aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes; everything Ferry stores is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ReservationOutcome(enum.Enum):
    RESERVED = "reserved"  # a new pending row: send the bytes
    RESUMED = "resumed"  # our own pending row for the same key and content
    DUPLICATE = "duplicate"  # stored already: this key, or (policy skip) another key
    COPY = "copy"  # a new pending row to fill by a server-side copy of ``source``


@dataclass(frozen=True)
class Reservation:
    outcome: ReservationOutcome
    record: FileRecord
    source: FileRecord | None = None  # for COPY: the verified row to copy from
    # A new row of an overwrite: the ETag of Ferry's object it replaces (None:
    # the key holds none of Ferry's, so nothing may be written over).
    replaced_etag: str | None = None


@dataclass(frozen=True)
class ObjectAtKey:
    """What the bucket holds at a released overwrite's key, as its uploader last saw it.

    The row the overwrite replaced gets the key back unless a look proved
    that its object is gone (another ETag there, or none): restoring a row
    whose bytes are gone would break invariant 1, and keeping it deleted while
    its bytes are there would let a check delete them.
    """

    looked: bool  # False: no look could be made (the server did not answer)
    etag: str | None = None  # what the look found (None: no object)

    def still_holds(self, etag: str | None) -> bool:
        return not self.looked or (etag is not None and self.etag == etag)


NOT_LOOKED = ObjectAtKey(looked=False)


@dataclass(frozen=True)
class UploadIntent:
    bucket: str
    key: str
    original_name: str
    size: int
    sha256: str
    content_type: str = "application/octet-stream"
    token: str | None = None  # the reserving transfer's; None for adoption by a repair
    endpoint: str | None = None  # where the object is stored: S3Storage.endpoint_id


@dataclass(frozen=True)
class DeleteOutcome:
    record: FileRecord
    object_deleted: bool
    error: str | None = None
    # What became of the bytes beyond "deleted", said plainly: a version kept
    # for the retention period (and until when), another program's left in place.
    note: str | None = None


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
    """One event of the catalog's outbox: what changed, about which file."""

    id: int
    event_type: OutboxEventType
    payload: dict[str, Any]
    created_at: datetime
    # Stable and unique across catalogs: the relay's Nats-Msg-Id.
    event_uid: str

    @classmethod
    def from_row(cls, row: OutboxRow | Row[Any]) -> OutboxEvent:
        """From an ORM row or a plain one (SQLite gives JSON and times back as text there)."""
        payload = json.loads(row.payload) if isinstance(row.payload, str) else row.payload
        created = row.created_at
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        return cls(row.id, OutboxEventType(row.event_type), payload, aware(created), row.event_uid)
