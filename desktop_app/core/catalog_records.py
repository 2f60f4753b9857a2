"""The catalog's values as the rest of Ferry sees them: plain frozen dataclasses.

No database here: :mod:`catalog` turns its rows into these and takes these
as requests, so callers never hold a session or an ORM object.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Row

from desktop_app.core.catalog_schema import (
    AuditAction,
    FileRow,
    FileStatus,
    OutboxEventType,
    OutboxRow,
)


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
            created_at=aware(row.created_at),
            uploaded_at=aware(row.uploaded_at) if row.uploaded_at else None,
            deleted_at=aware(row.deleted_at) if row.deleted_at else None,
            deleted_by=row.deleted_by,
            last_error=row.last_error,
            copied_from=row.copied_from,
            alive_at=aware(row.alive_at) if row.alive_at else None,
            endpoint=row.endpoint,
        )

    @property
    def live(self) -> bool:
        return self.status is not FileStatus.DELETED


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
