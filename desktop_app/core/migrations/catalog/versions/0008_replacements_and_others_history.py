"""An overwrite that undoes itself, and keys whose history is someone else's.

- ``files.replaces_id``: a pending row that will replace an active one of
  the same key and owner (an overwrite of a rewritten watched file). The old
  row steps aside (``deleted``) in the reservation's transaction, since one
  live row holds a key, but nothing is announced: its file.deleted event is
  written when the new row becomes active, in that same transaction. A
  released replacement (cancelled, failed, removed by a check) puts the old
  row back, active as it was.
- PostgreSQL: the narrow functions a normal user's check calls also name a
  key whose newest row is another user's deleted one (that user's object may
  still be stored, its delete refused by the bucket): such an object is
  theirs to clean up, never another user's to adopt. Still keys only.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"

# A key is someone else's when another user's live row holds it, or when no
# live row does and its newest row is another user's deleted one. At most one
# row of a key meets this (one live row per key; one newest row), so no DISTINCT.
_OTHERS_HOLD = """
  (f.status <> 'deleted' AND f.owner <> session_user)
  OR (f.status = 'deleted' AND f.owner <> session_user
      AND NOT EXISTS (SELECT 1 FROM files g WHERE g.bucket = f.bucket AND g.key = f.key
                      AND (g.status <> 'deleted' OR g.id > f.id)))
"""

FUNCTIONS = [
    f"""
CREATE OR REPLACE FUNCTION ferry_others_live_keys(p_bucket text, p_prefix text)
RETURNS TABLE(key text) LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
  SELECT f.key::text FROM files f
  WHERE f.bucket = p_bucket AND ({_OTHERS_HOLD})
    AND (p_prefix = '' OR (f.key >= p_prefix AND starts_with(f.key, p_prefix)))
  ORDER BY f.key COLLATE "C"
$$""",
    f"""
CREATE OR REPLACE FUNCTION ferry_key_is_others(p_bucket text, p_key text)
RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
  SELECT EXISTS (SELECT 1 FROM files f
                 WHERE f.bucket = p_bucket AND f.key = p_key AND ({_OTHERS_HOLD}))
$$""",
]

_LIVE_ONLY = """
CREATE OR REPLACE FUNCTION ferry_others_live_keys(p_bucket text, p_prefix text)
RETURNS TABLE(key text) LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
  SELECT f.key::text FROM files f
  WHERE f.bucket = p_bucket AND f.status <> 'deleted' AND f.owner <> session_user
    AND (p_prefix = '' OR (f.key >= p_prefix AND starts_with(f.key, p_prefix)))
  ORDER BY f.key COLLATE "C"
$$"""


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("replaces_id", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        for statement in FUNCTIONS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ferry_key_is_others(text, text)")
        op.execute(_LIVE_ONLY)
    with op.batch_alter_table("files") as batch:
        batch.drop_column("replaces_id")
