"""Files, audit log and outbox, with the live-row unique indexes.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

LIVE = sa.text("status <> 'deleted'")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ObjectKey = sa.String(1024).with_variant(sa.String(1024, collation="C"), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("key", ObjectKey, nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("original_name", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("etag", sa.String(80), nullable=True),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("uploaded_at", Timestamp, nullable=True),
        sa.Column("deleted_at", Timestamp, nullable=True),
        sa.Column("deleted_by", sa.String(128), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'deleted', 'missing')", name="ck_files_status"
        ),
        sa.CheckConstraint("size >= 0", name="ck_files_size"),
        sa.PrimaryKeyConstraint("id", name="pk_files"),
    )
    op.create_index(
        "uq_files_live_bucket_key",
        "files",
        ["bucket", "key"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_index(
        "uq_files_live_owner_sha256",
        "files",
        ["owner", "sha256"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_index("ix_files_bucket_key_all", "files", ["bucket", "key"])
    op.create_index("ix_files_owner_status", "files", ["owner", "status"])
    op.create_table(
        "audit_log",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("file_id", sa.BigInteger(), nullable=True),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("key", ObjectKey, nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("published_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_unpublished", "outbox", ["published_at", "id"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("audit_log")
    op.drop_index("ix_files_owner_status", "files")
    op.drop_index("ix_files_bucket_key_all", "files")
    op.drop_index("uq_files_live_owner_sha256", "files")
    op.drop_index("uq_files_live_bucket_key", "files")
    op.drop_table("files")
