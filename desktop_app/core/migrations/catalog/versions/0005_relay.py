"""The outbox as a relay reads it.

- ``event_uid``: a stable, globally unique id per event (a UUID). The relay
  sends it as JetStream's ``Nats-Msg-Id``, so a re-publish after a crash is
  dropped by the stream, and puts it in the body for consumers.
- ``skipped_reason``: an event the server refused for good (too large for
  its max payload) is set aside with the reason, so it never blocks the
  events behind it; published_at stays empty, the count of skipped events
  is visible.
- ``ix_outbox_pending``: the events still to publish, in order.
- PostgreSQL: every insert into the outbox notifies channel ``ferry_outbox``
  at commit (relays LISTEN and wake at once); ``ferry_outbox_backlog()``
  tells anyone how many events wait and since when (a count, nothing else),
  so ``ferry status`` shows a relay that has stopped. Relays may also set
  ``skipped_reason``.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

PENDING = sa.text("published_at IS NULL AND skipped_reason IS NULL")

NOTIFY_FUNCTION = """
CREATE FUNCTION ferry_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('ferry_outbox', '');
  RETURN NULL;
END
$$"""

BACKLOG_FUNCTION = """
CREATE FUNCTION ferry_outbox_backlog()
RETURNS TABLE(waiting bigint, skipped bigint, oldest timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
  SELECT count(*) FILTER (WHERE published_at IS NULL AND skipped_reason IS NULL),
         count(*) FILTER (WHERE skipped_reason IS NOT NULL),
         min(created_at) FILTER (WHERE published_at IS NULL AND skipped_reason IS NULL)
  FROM outbox
$$"""


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("event_uid", sa.String(36), nullable=True))
        batch.add_column(sa.Column("skipped_reason", sa.Text(), nullable=True))
    if postgres:
        op.execute("UPDATE outbox SET event_uid = gen_random_uuid()::text")
        op.execute("ALTER TABLE outbox ALTER COLUMN event_uid SET DEFAULT gen_random_uuid()::text")
    else:
        # Ferry gives new rows theirs; old ones get one here, row by row.
        ids = bind.execute(sa.text("SELECT id FROM outbox WHERE event_uid IS NULL")).scalars()
        for event_id in list(ids):
            bind.execute(
                sa.text("UPDATE outbox SET event_uid = :uid WHERE id = :id"),
                {"uid": str(uuid.uuid4()), "id": event_id},
            )
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("event_uid", existing_type=sa.String(36), nullable=False)
    op.create_index("uq_outbox_event_uid", "outbox", ["event_uid"], unique=True)
    op.drop_index("ix_outbox_unpublished", "outbox")
    op.create_index(
        "ix_outbox_pending", "outbox", ["id"], sqlite_where=PENDING, postgresql_where=PENDING
    )
    if not postgres:
        return
    op.execute(NOTIFY_FUNCTION)
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION ferry_outbox_notify()"
    )
    op.execute(BACKLOG_FUNCTION)
    op.execute(
        """
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ferry_relay') THEN
    EXECUTE 'GRANT UPDATE (skipped_reason) ON outbox TO ferry_relay';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ferry_admin') THEN
    EXECUTE 'GRANT UPDATE (skipped_reason) ON outbox TO ferry_admin';
  END IF;
END
$$"""
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ferry_outbox_backlog()")
        op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
        op.execute("DROP FUNCTION IF EXISTS ferry_outbox_notify()")
    op.drop_index("ix_outbox_pending", "outbox")
    op.create_index("ix_outbox_unpublished", "outbox", ["published_at", "id"])
    op.drop_index("uq_outbox_event_uid", "outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("skipped_reason")
        batch.drop_column("event_uid")
