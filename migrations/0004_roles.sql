-- Least-privilege database roles: each deployed function connects as its own user, a member of
-- one of these NOLOGIN group roles, and can do only what its statements need. The migration
-- owner (the RDS master user) keeps ownership of every table and is used by migrate only.
--
--   dte_api       enqueue, read, cancel        jobs: SELECT INSERT UPDATE
--   dte_consumer  claim, renew, complete, fail jobs: SELECT UPDATE
--   dte_reaper    requeue expired, prune,      jobs: SELECT UPDATE DELETE,
--                 compact counters             job_counter_deltas: SELECT INSERT DELETE
--
-- Every role may INSERT into job_counter_deltas, because the statement triggers of 0002 run
-- with the privileges of whoever changed jobs. No role can DELETE what it does not prune,
-- TRUNCATE, or ALTER or DROP anything: those need ownership.
--
-- Roles are global to the cluster while grants are per schema (tests run many schemas at
-- once), so each role is created only when missing, and a concurrent creator losing the race
-- (unique_violation or duplicate_object) is not an error. A later migration that adds a table
-- the functions use must grant on it in the same file.

DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['dte_api', 'dte_consumer', 'dte_reaper'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN', r);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
      END;
    END IF;
  END LOOP;
END
$$;

-- The schema is whatever this migration runs in (public when deployed).
DO $$
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO dte_api, dte_consumer, dte_reaper', current_schema());
END
$$;

GRANT SELECT ON schema_migrations TO dte_api, dte_consumer, dte_reaper;
GRANT SELECT ON queues TO dte_api, dte_consumer, dte_reaper;

GRANT SELECT, INSERT, UPDATE ON jobs TO dte_api;
GRANT INSERT ON job_counter_deltas TO dte_api;

GRANT SELECT, UPDATE ON jobs TO dte_consumer;
GRANT SELECT, INSERT ON job_counter_deltas TO dte_consumer;

GRANT SELECT, UPDATE, DELETE ON jobs TO dte_reaper;
GRANT SELECT, INSERT, DELETE ON job_counter_deltas TO dte_reaper;

-- 0003 adds the audit of manual changes (taskctl, as the owner). A cancel through the api is
-- a manual change too, so the api may append to it; no function reads or prunes it.
DO $$
BEGIN
  IF to_regclass('job_audit') IS NOT NULL THEN
    GRANT INSERT ON job_audit TO dte_api;
  END IF;
END
$$;

-- On RDS (where the rds_iam role exists) create the login users the functions connect as with
-- IAM database authentication: no password exists for them at all. Elsewhere operators create
-- their own login users and GRANT dte_api (etc.) to them.
DO $$
DECLARE
  r text;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam') THEN
    FOREACH r IN ARRAY ARRAY['dte_api', 'dte_consumer', 'dte_reaper'] LOOP
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r || '_login') THEN
        BEGIN
          EXECUTE format('CREATE ROLE %I LOGIN IN ROLE %I, rds_iam', r || '_login', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
          NULL;
        END;
      END IF;
    END LOOP;
  END IF;
END
$$;
