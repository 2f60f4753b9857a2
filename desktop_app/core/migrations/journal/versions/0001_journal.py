"""Transfers and their parts.

Revision ID: j0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("source_size", sa.BigInteger(), nullable=False),
        sa.Column("source_mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("source_device", sa.BigInteger(), nullable=False),
        sa.Column("source_inode", sa.BigInteger(), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("part_size", sa.BigInteger(), nullable=False),
        sa.Column("part_count", sa.Integer(), nullable=False),
        sa.Column("upload_id", sa.Text(), nullable=True),
        sa.Column("catalog_file_id", sa.BigInteger(), nullable=True),
        sa.Column("etag", sa.String(80), nullable=True),
        sa.Column("duplicate_of", sa.Text(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error_kind", sa.String(32), nullable=True),
        sa.Column("error_title", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_transfers_state", "transfers", ["state"])
    op.create_table(
        "parts",
        sa.Column(
            "transfer_id",
            sa.Integer(),
            sa.ForeignKey("transfers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("number", sa.Integer(), primary_key=True),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("md5", sa.String(32), nullable=True),
        sa.Column("etag", sa.String(80), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("parts")
    op.drop_table("transfers")
