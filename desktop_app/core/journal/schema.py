"""The journal's tables as SQLAlchemy sees them: transfers, parts, part digests, attempts.

One schema with :mod:`records` (which loads no SQLAlchemy, for `ferry
status`): at import the tables' columns are checked against the columns the
records name, so the two cannot drift apart. Alembic's journal scripts make
these tables on disk; :data:`metadata` makes them in memory for a read-only
look at a journal that was never written.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from desktop_app.core.journal.records import ATTEMPT_COLUMNS, TIME_COLUMNS, TRANSFER_COLUMNS

metadata = MetaData()
transfers = Table(
    "transfers",
    metadata,
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
    metadata,
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
    metadata,
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
    metadata,
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


# The columns the hot path's SQL names (hot_path.py) are journal_records'
# (which loads no SQLAlchemy, for `ferry status`): checked against the tables
# above at import, so both stay one schema.
_TABLE_TIME_COLUMNS = {c.name for c in transfers.c if isinstance(c.type, DateTime)}
if (
    tuple(c.name for c in transfers.c) != TRANSFER_COLUMNS
    or _TABLE_TIME_COLUMNS != TIME_COLUMNS
    or tuple(c.name for c in attempts.c) != ATTEMPT_COLUMNS
):
    raise RuntimeError("journal_records' columns no longer match the journal's tables")
