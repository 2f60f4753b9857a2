-- Roles for a team catalog on PostgreSQL. Run once as a database owner:
--   psql -v schema=public -f postgres_roles.sql DBNAME
-- then, per person:  CREATE ROLE alice LOGIN IN ROLE ferry_user;
-- for those who may repair everyone's files:  GRANT ferry_admin TO bob;
-- and for the login of `ferry relay`:  CREATE ROLE relay LOGIN IN ROLE ferry_relay;
-- Row-level security (migrations 0002, 0004) makes each user see only rows
-- whose owner is their login; ferry_admin members see and repair all rows.
-- Users never write the audit log or the outbox themselves: Ferry's
-- SECURITY DEFINER functions do, from the file row, in the same transaction.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ferry_user') THEN
    CREATE ROLE ferry_user NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ferry_admin') THEN
    CREATE ROLE ferry_admin NOLOGIN IN ROLE ferry_user;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ferry_relay') THEN
    CREATE ROLE ferry_relay NOLOGIN;
  END IF;
END
$$;
GRANT USAGE ON SCHEMA :"schema" TO ferry_user, ferry_relay;
GRANT SELECT, INSERT, UPDATE, DELETE ON :"schema".files TO ferry_user;
GRANT SELECT ON :"schema".audit_log TO ferry_user;
REVOKE ALL ON :"schema".outbox FROM ferry_user;
REVOKE INSERT, UPDATE, DELETE ON :"schema".audit_log FROM ferry_user;
-- Users read their own events through ferry_own_events(); admins and relays all.
-- `ferry relay` (a member of ferry_relay) reads every event, claims it with
-- SELECT ... FOR UPDATE SKIP LOCKED (which needs the UPDATE right), marks it
-- published or sets it aside with a reason; nothing else: no file rows, no
-- audit log, no new or changed events. Anyone may count what waits
-- (ferry_outbox_backlog(), for `ferry status`).
GRANT SELECT, UPDATE (published_at, skipped_reason) ON :"schema".outbox TO ferry_relay, ferry_admin;
-- Everyone reads the catalog's marker and schema version (checked at every open).
GRANT SELECT ON :"schema".ferry_catalog, :"schema".ferry_schema_version TO ferry_user, ferry_relay;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA :"schema" TO ferry_user;
