"""A catalog that tells the truth in a shared bucket.

- Content is no longer unique per owner: the same content may live under
  several keys (a server-side copy, "copied from" in ``copied_from``). At most
  one *upload of bytes* per (bucket, owner, content) may be pending at once,
  so two identical files of one folder send their bytes once.
- ``alive_at``: the uploading Ferry touches its pending rows while it sends,
  so a check anywhere knows an upload is alive whatever the grace period.
- The outbox names the owner of the file an event is about.
- PostgreSQL: users may no longer write the audit log or the outbox, nor read
  the outbox (their own events come through ``ferry_own_events``). Rows are
  written by Ferry's own SECURITY DEFINER functions, which take the facts
  from the file row itself (no forged event for someone else's file);
  ``ferry_relay`` members read and mark every event. Two narrow
  functions tell a check which keys hold someone else's live row and whether
  a key holds any live row, revealing nothing else.

Existing catalogs stay valid: the new index allows what the old one did.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

IS_ADMIN = (
    "EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'ferry_admin' "
    "AND pg_has_role({who}, r.oid, 'member'))"
)
IS_RELAY = (
    "EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'ferry_relay' "
    "AND pg_has_role(current_user, r.oid, 'member'))"
)
# The caller, seen from inside a SECURITY DEFINER function (whose current_user
# is the function's owner).
CALLER_IS_ADMIN = IS_ADMIN.format(who="session_user")

FUNCTIONS = [
    # Which keys under a prefix hold another user's live row: keys only.
    """
CREATE FUNCTION ferry_others_live_keys(p_bucket text, p_prefix text)
RETURNS TABLE(key text) LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
  SELECT f.key::text FROM files f
  WHERE f.bucket = p_bucket AND f.status <> 'deleted' AND f.owner <> session_user
    AND (p_prefix = '' OR (f.key >= p_prefix AND starts_with(f.key, p_prefix)))
  ORDER BY f.key COLLATE "C"
$$""",
    # Does any live row, whoever's, hold this key?
    """
CREATE FUNCTION ferry_key_is_live(p_bucket text, p_key text)
RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
  SELECT EXISTS (SELECT 1 FROM files f
                 WHERE f.bucket = p_bucket AND f.key = p_key AND f.status <> 'deleted')
$$""",
    # A user's own events (the outbox itself is not theirs to read).
    """
CREATE FUNCTION ferry_own_events(p_after bigint, p_limit integer)
RETURNS SETOF outbox LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
  SELECT * FROM outbox WHERE owner = session_user AND id > p_after ORDER BY id LIMIT p_limit
$$""",
    # An audit entry by the caller; about a file only if that file is theirs
    # (or the caller is an admin). Bucket and key come from the row.
    f"""
CREATE FUNCTION ferry_audit(p_file_id bigint, p_bucket text, p_key text, p_action text,
                            p_details json)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE f files%ROWTYPE;
BEGIN
  IF p_file_id IS NOT NULL THEN
    SELECT * INTO f FROM files WHERE id = p_file_id;
    IF NOT FOUND OR (f.owner <> session_user AND NOT {CALLER_IS_ADMIN}) THEN
      RAISE EXCEPTION 'permission denied: file % is not yours', p_file_id
        USING ERRCODE = '42501';
    END IF;
    p_bucket := f.bucket;
    p_key := f.key;
  END IF;
  INSERT INTO audit_log (at, actor, action, file_id, bucket, key, details)
  VALUES (now(), session_user, p_action, p_file_id, p_bucket, p_key, p_details);
END
$$""",
    # An event about a file, built from the row itself, and only one the row's
    # state allows: file.uploaded needs an active row, file.deleted a deleted one.
    f"""
CREATE FUNCTION ferry_announce(p_file_id bigint, p_event text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE f files%ROWTYPE;
BEGIN
  SELECT * INTO f FROM files WHERE id = p_file_id;
  IF NOT FOUND OR (f.owner <> session_user AND NOT {CALLER_IS_ADMIN}) THEN
    RAISE EXCEPTION 'permission denied: file % is not yours', p_file_id
      USING ERRCODE = '42501';
  END IF;
  IF (p_event = 'file.uploaded' AND f.status <> 'active')
     OR (p_event = 'file.deleted' AND f.status <> 'deleted')
     OR p_event NOT IN ('file.uploaded', 'file.deleted', 'file.repaired') THEN
    RAISE EXCEPTION 'permission denied: % does not describe file % (%)',
      p_event, p_file_id, f.status USING ERRCODE = '42501';
  END IF;
  INSERT INTO outbox (event_type, owner, payload, created_at, published_at)
  VALUES (p_event, f.owner,
          json_build_object('file_id', f.id, 'bucket', f.bucket, 'key', f.key,
                            'owner', f.owner, 'size', f.size, 'sha256', f.sha256,
                            'etag', f.etag, 'status', f.status,
                            'copied_from', f.copied_from),
          now(), NULL);
END
$$""",
]
FUNCTION_NAMES = [
    "ferry_own_events(bigint, integer)",
    "ferry_others_live_keys(text, text)",
    "ferry_key_is_live(text, text)",
    "ferry_audit(bigint, text, text, text, json)",
    "ferry_announce(bigint, text)",
]


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("copied_from", sa.String(1024), nullable=True))
        batch.add_column(sa.Column("alive_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_index("uq_files_live_owner_sha256", "files")
    op.create_index("ix_files_bucket_owner_sha256", "files", ["bucket", "owner", "sha256"])
    pending_upload = sa.text("status = 'pending' AND copied_from IS NULL")
    op.create_index(
        "uq_files_sending_content",
        "files",
        ["bucket", "owner", "sha256"],
        unique=True,
        sqlite_where=pending_upload,
        postgresql_where=pending_upload,
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("owner", sa.String(128), nullable=True))
    if bind.dialect.name != "postgresql":
        op.execute("UPDATE outbox SET owner = json_extract(payload, '$.owner')")
        return
    op.execute("UPDATE outbox SET owner = payload->>'owner'")
    for statement in FUNCTIONS:
        op.execute(statement)
    op.execute("ALTER TABLE outbox ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY outbox_read ON outbox FOR SELECT "
        f"USING (owner = current_user OR {IS_ADMIN.format(who='current_user')} OR {IS_RELAY})"
    )
    op.execute(
        "CREATE POLICY outbox_publish ON outbox FOR UPDATE "
        f"USING ({IS_ADMIN.format(who='current_user')} OR {IS_RELAY})"
    )
    # Catalogs whose roles exist already: writing goes through the functions.
    op.execute(
        """
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ferry_user') THEN
    EXECUTE 'REVOKE INSERT, UPDATE, DELETE ON audit_log, outbox FROM ferry_user';
    EXECUTE 'REVOKE SELECT ON outbox FROM ferry_user';
  END IF;
END
$$"""
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP POLICY IF EXISTS outbox_publish ON outbox")
        op.execute("DROP POLICY IF EXISTS outbox_read ON outbox")
        op.execute("ALTER TABLE outbox DISABLE ROW LEVEL SECURITY")
        for name in FUNCTION_NAMES:
            op.execute(f"DROP FUNCTION IF EXISTS {name}")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("owner")
    op.drop_index("uq_files_sending_content", "files")
    op.drop_index("ix_files_bucket_owner_sha256", "files")
    live = sa.text("status <> 'deleted'")
    op.create_index(
        "uq_files_live_owner_sha256",
        "files",
        ["owner", "sha256"],
        unique=True,
        sqlite_where=live,
        postgresql_where=live,
    )
    with op.batch_alter_table("files") as batch:
        batch.drop_column("alive_at")
        batch.drop_column("copied_from")
