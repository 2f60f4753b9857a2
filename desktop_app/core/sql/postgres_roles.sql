-- Roles for a team catalog on PostgreSQL. Run once as a database owner:
--   psql -v schema=public -f postgres_roles.sql DBNAME
-- then, per person:  CREATE ROLE alice LOGIN IN ROLE ferry_user;
-- and for those who may repair everyone's files:  GRANT ferry_admin TO bob;
-- Row-level security (migration 0002) makes each user see only rows whose
-- owner is their login; ferry_admin members see and repair all rows.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ferry_user') THEN
    CREATE ROLE ferry_user NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ferry_admin') THEN
    CREATE ROLE ferry_admin NOLOGIN IN ROLE ferry_user;
  END IF;
END
$$;
GRANT USAGE ON SCHEMA :"schema" TO ferry_user;
GRANT SELECT, INSERT, UPDATE, DELETE ON :"schema".files TO ferry_user;
GRANT SELECT, INSERT ON :"schema".audit_log, :"schema".outbox TO ferry_user;
GRANT SELECT ON :"schema".alembic_version TO ferry_user;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA :"schema" TO ferry_user;
