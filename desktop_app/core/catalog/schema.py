"""The catalog's tables: files, audit log, outbox.

Invariants the database itself enforces (partial unique indexes, identical on
SQLite and PostgreSQL): one live (not deleted) row per (bucket, key); at most
one pending upload of bytes per (bucket, owner, sha256), so identical files
send their bytes once (the others become server-side copies, which carry
``copied_from``). Deleted rows keep their history and never block a
re-upload. Keys compare in byte order: SQLite's default BINARY collation,
PostgreSQL ``COLLATE "C"``, the order in which S3 lists them.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}


class FileStatus(enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    DELETED = "deleted"
    MISSING = "missing"


class OutboxEventType(enum.Enum):
    FILE_UPLOADED = "file.uploaded"
    FILE_DELETED = "file.deleted"
    FILE_REPAIRED = "file.repaired"


class AuditAction(enum.Enum):
    RESERVE = "reserve"
    ACTIVATE = "activate"
    RELEASE = "release"
    DELETE = "delete"
    DELETE_OBJECT_FAILED = "delete_object_failed"
    MARK_MISSING = "mark_missing"
    REPAIR = "repair"
    RESTORE = "restore"  # an overwrite that did not finish gave the key back


LIVE = text("status <> 'deleted'")
SENDING_BYTES = text("status = 'pending' AND copied_from IS NULL")
# BigInteger ids autoincrement on PostgreSQL; SQLite only does so for INTEGER.
Id = BigInteger().with_variant(Integer(), "sqlite")
ObjectKey = String(1024).with_variant(String(1024, collation="C"), "postgresql")
Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


class FileRow(Base):
    __tablename__ = "files"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    bucket: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(ObjectKey)
    owner: Mapped[str] = mapped_column(String(128))
    original_name: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    etag: Mapped[str | None] = mapped_column(String(80))
    content_type: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    uploaded_at: Mapped[datetime | None] = mapped_column(Timestamp)
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)
    deleted_by: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    # The reserving transfer's token: only it may resume, activate or release.
    token: Mapped[str | None] = mapped_column(String(32))
    # The key this row's object was copied from on the server (no bytes sent).
    copied_from: Mapped[str | None] = mapped_column(String(1024))
    # Touched by the uploading Ferry while it sends: a check leaves a pending
    # row alone while this is recent, whatever its grace period.
    alive_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # The S3 endpoint the object lives at ("aws" or its URL); None: recorded
    # before Ferry noted endpoints (catalog revision 0006).
    endpoint: Mapped[str | None] = mapped_column(String(255))
    # A pending overwrite: the row of the same key it replaces once active.
    # That row stepped aside (deleted, unannounced) and comes back if this
    # one is released (revision 0008).
    replaces_id: Mapped[int | None] = mapped_column(BigInteger)
    # In a bucket that keeps versions: the version Ferry's write made, which a
    # delete removes exactly (revision 0009). None: the bucket keeps none.
    version_id: Mapped[str | None] = mapped_column(String(1024))
    # The full-object checksum the server verified (base64) and its type
    # ("CRC64NVME"), where the endpoint keeps checksums (revision 0010).
    checksum: Mapped[str | None] = mapped_column(String(128))
    checksum_type: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index(
            "uq_files_live_bucket_key",
            "bucket",
            "key",
            unique=True,
            sqlite_where=LIVE,
            postgresql_where=LIVE,
        ),
        Index(
            "uq_files_sending_content",
            "bucket",
            "owner",
            "sha256",
            unique=True,
            sqlite_where=SENDING_BYTES,
            postgresql_where=SENDING_BYTES,
        ),
        Index("ix_files_bucket_owner_sha256", "bucket", "owner", "sha256"),
        Index("ix_files_bucket_key_all", "bucket", "key"),
        Index("ix_files_owner_status", "owner", "status"),
        Index("ix_files_bucket_version_id", "bucket", "version_id"),
    )


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(Timestamp)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    file_id: Mapped[int | None] = mapped_column(BigInteger)
    bucket: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(ObjectKey)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


class OutboxRow(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(String(32))
    # Whose file the event is about: row-level security lets only them (and
    # admins, relays) read it.
    owner: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    published_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # The event's stable id: JetStream's Nats-Msg-Id, so a re-publish is dropped.
    event_uid: Mapped[str] = mapped_column(
        String(36), server_default=None, default=lambda: str(uuid.uuid4())
    )
    # Why the relay set this event aside for good (the server refused it).
    skipped_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("uq_outbox_event_uid", "event_uid", unique=True),
        Index(
            "ix_outbox_pending",
            "id",
            sqlite_where=text("published_at IS NULL AND skipped_reason IS NULL"),
            postgresql_where=text("published_at IS NULL AND skipped_reason IS NULL"),
        ),
    )
