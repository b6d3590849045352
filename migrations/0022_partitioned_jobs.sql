-- destructive: reviewed
-- The row model (issue 21, item 1): `jobs` becomes a partitioned table, live rows in one
-- partition and finished rows in one partition per UTC day.
--
--   jobs                      PARTITION BY RANGE (coalesce(finished_at, 'infinity'))
--     jobs_live               FROM ('infinity') TO (MAXVALUE): queued and running rows
--     jobs_finished_YYYYMMDD  one UTC day of finished rows each (jobs_partitions_ensure makes
--                             them ahead; jobs_prune_finished drops them after the retention)
--     jobs_legacy             the finished rows of the table this migration replaces, when it
--                             held any: every day up to tomorrow, pruned in batches as before,
--                             dropped whole once past the retention
--     jobs_finished_overflow  DEFAULT: finished rows of a day with no partition yet (nothing is
--                             refused); jobs_partitions_ensure moves them into their day's
--
-- Why: every finished row used to stay in the claim's table, each completion a non-HOT UPDATE
-- (status is in five partial-index predicates), and pruning was a DELETE + VACUUM. Now the
-- engine completes by DELETE from jobs_live + INSERT into the day's partition (three small
-- indexes), jobs_live stays the size of the backlog, and pruning a day is DROP TABLE. The runbook's
-- SQL runs on `jobs` unchanged: an UPDATE that changes a row's class (live <-> finished) moves it
-- between partitions (jobs_route, a BEFORE UPDATE trigger, keeps finished_at consistent with the
-- status so the row lands in the right one), and the counting triggers count such a move as the
-- UPDATE it is (functions/counters.sql).
--
-- What partitioning takes away, and what stands in for it:
--   * a primary key on id (PostgreSQL requires the partition key in it): ids come from the
--     sequence job_ids (PostgreSQL 15 has no identity column on a partitioned table); each
--     partition has its own index on id, jobs_live a primary key;
--   * the unique index on idempotency_key: job_keys holds one row per key (the engine's
--     enqueues insert there first; a hand-written INSERT with a key goes through the insert
--     trigger), which also keeps a key answerable after its job is gone;
--
-- Online: this file runs in one transaction holding jobs' ACCESS EXCLUSIVE lock from the RENAME
-- on. Live rows are copied into jobs_live (a backlog's worth); finished rows are not moved: the
-- old table becomes the partition jobs_legacy after one validating scan (the CHECK below, which
-- lets ATTACH skip its own). docs/ARCHITECTURE.md has the measured time for 5M finished rows.
-- A fresh install has no legacy rows and drops the empty table instead.
--
-- Expand/contract: the previous release's code reads and writes `jobs` (the parent) and calls the
-- functions, which the function files replace in this run; jobs_cancel and jobs_cancel_audited
-- return the row type `jobs`, which went with the RENAME, so they are dropped here and created
-- again by functions/cancel.sql over the new `jobs`, with the same signatures and grants.

ALTER TABLE jobs RENAME TO jobs_legacy;
ALTER INDEX jobs_pkey RENAME TO jobs_legacy_pkey;
ALTER INDEX jobs_claim_idx RENAME TO jobs_legacy_claim_idx;
ALTER INDEX jobs_claim_queue_idx RENAME TO jobs_legacy_claim_queue_idx;
ALTER INDEX jobs_finished_idx RENAME TO jobs_legacy_finished_idx;
ALTER INDEX jobs_idempotency_key_idx RENAME TO jobs_legacy_idempotency_key_idx;
ALTER INDEX jobs_running_lease_idx RENAME TO jobs_legacy_running_lease_idx;
ALTER INDEX jobs_running_queue_idx RENAME TO jobs_legacy_running_queue_idx;
DROP TRIGGER jobs_count_inserted ON jobs_legacy;
DROP TRIGGER jobs_count_updated ON jobs_legacy;
DROP FUNCTION jobs_cancel_audited(bigint, text, text, boolean, text);
DROP FUNCTION jobs_cancel(bigint, text, text, boolean, text);

CREATE SEQUENCE job_ids AS bigint;
DO $$
DECLARE
  v_last bigint;
  v_called boolean;
BEGIN
  EXECUTE format('SELECT last_value, is_called FROM %s', pg_get_serial_sequence('jobs_legacy', 'id'))
    INTO v_last, v_called;
  v_last := greatest(v_last, (SELECT max(l.id) FROM jobs_legacy l));
  PERFORM setval('job_ids', greatest(v_last, 1), v_called OR v_last > 1);
END
$$;

CREATE TABLE jobs (
  id bigint NOT NULL DEFAULT nextval('job_ids'),
  queue text NOT NULL DEFAULT 'default',
  task_type text NOT NULL,
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  status text NOT NULL DEFAULT 'queued',
  priority integer NOT NULL DEFAULT 0,
  run_at timestamptz NOT NULL DEFAULT now(),
  attempts integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 5,
  lease_token bigint NOT NULL DEFAULT 0,
  locked_at timestamptz,
  locked_by text,
  lease_seconds integer NOT NULL DEFAULT 30,
  started_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  last_error jsonb,
  result jsonb,
  idempotency_key text,
  request_hash text,
  deadline_releases integer NOT NULL DEFAULT 0,
  created_by text,
  CONSTRAINT jobs_attempts_check CHECK (attempts >= 0 AND attempts <= max_attempts),
  CONSTRAINT jobs_created_by_check CHECK (created_by IS NULL OR (length(created_by) >= 1 AND length(created_by) <= 2048)),
  CONSTRAINT jobs_idempotency_key_check CHECK (idempotency_key IS NULL OR (length(idempotency_key) >= 1 AND length(idempotency_key) <= 255)),
  CONSTRAINT jobs_lease_seconds_check CHECK (lease_seconds >= 1),
  CONSTRAINT jobs_max_attempts_check CHECK (max_attempts >= 1),
  CONSTRAINT jobs_queue_check CHECK (length(queue) >= 1 AND length(queue) <= 128),
  CONSTRAINT jobs_status_check CHECK (status = ANY (ARRAY['queued', 'running', 'completed', 'failed'])),
  CONSTRAINT jobs_task_type_check CHECK (length(task_type) >= 1 AND length(task_type) <= 200)
) PARTITION BY RANGE ((coalesce(finished_at, 'infinity'::timestamptz)));
ALTER SEQUENCE job_ids OWNED BY jobs.id;

-- The live partition. Its CHECK is what lets the planner leave it out of a query for finished
-- rows, and the finished partitions' CHECKs leave them out of one for queued or running rows
-- (constraint exclusion): the consumer's, reaper's and wake's statements name jobs_live. Its
-- indexes keep the names the unpartitioned table's had (plans and the runbook read the same).
CREATE TABLE jobs_live PARTITION OF jobs (
  CONSTRAINT jobs_pkey PRIMARY KEY (id),
  CONSTRAINT jobs_live_unfinished CHECK (status IN ('queued', 'running') AND finished_at IS NULL)
) FOR VALUES FROM ('infinity') TO (MAXVALUE);
CREATE INDEX jobs_claim_idx ON jobs_live (priority DESC, run_at, id) WHERE status = 'queued';
CREATE INDEX jobs_claim_queue_idx ON jobs_live (queue, priority DESC, run_at, id) WHERE status = 'queued';
-- One index of running rows where the single table had two ((locked_at) for the reaper, (queue)
-- for the limited queues' running counts, 0008 and 0011): every claim inserts each claimed row's
-- new version into the running indexes (status is in their predicates, so no claim is a HOT
-- update), and the second one measured 8% of the server's CPU per job and 7% of the WAL in a
-- single-backend drain at claim 500. The queue first serves the per-queue counts and ages; the
-- reaper reads all running rows (a fleet's claimed batches), unordered, up to its batch.
CREATE INDEX jobs_running_idx ON jobs_live (queue, locked_at) WHERE status = 'running';
CREATE INDEX jobs_idempotency_key_idx ON jobs_live (idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE jobs_finished_overflow PARTITION OF jobs (
  CONSTRAINT jobs_finished_overflow_finished CHECK (status IN ('completed', 'failed') AND finished_at IS NOT NULL)
) DEFAULT;
CREATE INDEX jobs_finished_overflow_id_idx ON jobs_finished_overflow (id);
CREATE INDEX jobs_finished_overflow_finished_idx ON jobs_finished_overflow (finished_at);
CREATE INDEX jobs_finished_overflow_idempotency_key_idx ON jobs_finished_overflow (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- The finished partitions of `jobs`, with their bounds: what jobs_partitions_ensure and
-- jobs_prune_finished (functions/partitions.sql) read instead of parsing pg_class.relpartbound.
CREATE TABLE job_partitions (
  name text PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('day', 'legacy')),
  lower_bound timestamptz NOT NULL,
  upper_bound timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK (lower_bound < upper_bound)
);

-- One row per idempotency key, for as long as its job is kept (or, for a queue that deletes its
-- jobs on completion, for the retention period): the uniqueness the partitioned table cannot
-- enforce, and the answer to a replay whose job is gone.
CREATE TABLE job_keys (
  idempotency_key text PRIMARY KEY,
  job_id bigint NOT NULL,
  request_hash text,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_keys_created_at_idx ON job_keys (created_at);
INSERT INTO job_keys (idempotency_key, job_id, request_hash, created_by, created_at)
SELECT l.idempotency_key, l.id, l.request_hash, l.created_by, l.created_at
  FROM jobs_legacy l WHERE l.idempotency_key IS NOT NULL;

-- Per-queue retention (issue 21, item 5): 'keep' (the default, today's behaviour: finished
-- jobs are kept for the reaper's retention) or 'delete' (a completed job is deleted by its
-- completion; failed jobs are kept; keys stay in job_keys for the retention).
ALTER TABLE queues ADD COLUMN retention text NOT NULL DEFAULT 'keep' CHECK (retention IN ('keep', 'delete'));

-- Live rows move to jobs_live (the triggers come after: nothing is counted twice).
INSERT INTO jobs_live (id, queue, task_type, payload, status, priority, run_at, attempts, max_attempts,
                       lease_token, locked_at, locked_by, lease_seconds, started_at, finished_at,
                       created_at, updated_at, last_error, result, idempotency_key, request_hash,
                       deadline_releases, created_by)
SELECT l.id, l.queue, l.task_type, l.payload, l.status, l.priority, l.run_at, l.attempts, l.max_attempts,
       l.lease_token, l.locked_at, l.locked_by, l.lease_seconds, l.started_at, NULL,
       l.created_at, l.updated_at, l.last_error, l.result, l.idempotency_key, l.request_hash,
       l.deadline_releases, l.created_by
  FROM jobs_legacy l WHERE l.status IN ('queued', 'running');
DELETE FROM jobs_legacy l WHERE l.status IN ('queued', 'running');

DO $$
DECLARE
  v_bound timestamptz := date_trunc('day', now(), 'UTC') + interval '1 day';
BEGIN
  IF NOT EXISTS (SELECT 1 FROM jobs_legacy) THEN
    DROP TABLE jobs_legacy;
    RETURN;
  END IF;
  -- Rows from before finished_at was always written: the partition key needs it.
  UPDATE jobs_legacy l SET finished_at = l.updated_at WHERE l.finished_at IS NULL;
  ALTER TABLE jobs_legacy ALTER COLUMN id DROP IDENTITY;
  ALTER TABLE jobs_legacy VALIDATE CONSTRAINT jobs_created_by_check;
  EXECUTE format('ALTER TABLE jobs_legacy ADD CONSTRAINT jobs_legacy_finished CHECK '
                 '(status IN (''completed'', ''failed'') AND coalesce(finished_at, ''infinity''::timestamptz) < %L)',
                 v_bound);
  EXECUTE format('ALTER TABLE jobs ATTACH PARTITION jobs_legacy FOR VALUES FROM (MINVALUE) TO (%L)', v_bound);
  INSERT INTO job_partitions (name, kind, lower_bound, upper_bound)
  VALUES ('jobs_legacy', 'legacy', '-infinity', v_bound);
END
$$;

-- Readers as before: the roles read `jobs` (the parent); nobody but the owner writes it.
GRANT SELECT ON jobs TO dte_api, dte_consumer, dte_reaper;
GRANT INSERT (idempotency_key, max_attempts, payload, priority, queue, request_hash, run_at, task_type)
  ON jobs TO dte_api;
REVOKE ALL ON job_keys, job_partitions FROM PUBLIC;
GRANT USAGE ON SEQUENCE job_ids TO dte_api;

-- The triggers, as the function files define their functions (these bodies are history; the
-- files win from the next run on). Created after the copy above, so the copied rows were not
-- counted again. jobs_count_inserted keeps its name (the bench turns counting off by it) and is
-- now BEFORE INSERT (see functions/counters.sql for why).
CREATE OR REPLACE FUNCTION jobs_count_row_inserted()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
AS $function$
DECLARE
  v_moving text := current_setting('dte.moving', true);
BEGIN
  IF v_moving IS NOT NULL AND split_part(v_moving, ':', 1) = NEW.id::text THEN
    PERFORM set_config('dte.moving', '', true);
    IF NEW.status IN ('completed', 'failed') AND NEW.status IS DISTINCT FROM split_part(v_moving, ':', 2) THEN
      INSERT INTO job_counter_deltas (completed, failed)
      VALUES ((NEW.status = 'completed')::int, (NEW.status = 'failed')::int);
    END IF;
    RETURN NEW;
  END IF;
  INSERT INTO job_counter_deltas (submitted, completed, failed)
  VALUES (1, (NEW.status = 'completed')::int, (NEW.status = 'failed')::int);
  IF NEW.idempotency_key IS NOT NULL THEN
    INSERT INTO job_keys (idempotency_key, job_id, request_hash, created_by)
    VALUES (NEW.idempotency_key, NEW.id, NEW.request_hash, NEW.created_by);
  END IF;
  RETURN NEW;
END
$function$;

CREATE OR REPLACE FUNCTION jobs_route_moved()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
AS $function$
BEGIN
  IF NEW.status IN ('queued', 'running') THEN
    NEW.finished_at := NULL;
  ELSE
    NEW.finished_at := coalesce(NEW.finished_at, now());
  END IF;
  PERFORM set_config('dte.moving', NEW.id::text || ':' || OLD.status, true);
  RETURN NEW;
END
$function$;

CREATE OR REPLACE FUNCTION jobs_partitions_ensure(p_days_ahead integer)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET lock_timeout TO '2s'
AS $function$
#variable_conflict error
DECLARE
  v_day timestamptz;
  v_next timestamptz;
  v_name text;
  v_made integer := 0;
BEGIN
  IF p_days_ahead IS NULL OR p_days_ahead < 0 OR p_days_ahead > 60 THEN
    RAISE EXCEPTION 'jobs_partitions_ensure: days ahead must be 0 to 60, not %', p_days_ahead
      USING ERRCODE = '22023';
  END IF;
  FOR i IN 0 .. p_days_ahead LOOP
    v_day := date_trunc('day', now(), 'UTC') + make_interval(days => i);
    v_next := v_day + interval '1 day';
    CONTINUE WHEN EXISTS (SELECT 1 FROM job_partitions p WHERE p.lower_bound < v_next AND p.upper_bound > v_day);
    v_name := 'jobs_finished_' || to_char(v_day AT TIME ZONE 'UTC', 'YYYYMMDD');
    EXECUTE format('CREATE TABLE %I (LIKE jobs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_name);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (status IN (''completed'', ''failed'') '
                   'AND coalesce(finished_at, ''infinity''::timestamptz) >= %L '
                   'AND coalesce(finished_at, ''infinity''::timestamptz) < %L)',
                   v_name, v_name || '_day', v_day, v_next);
    EXECUTE format('CREATE INDEX %I ON %I (id)', v_name || '_id_idx', v_name);
    EXECUTE format('CREATE INDEX %I ON %I (idempotency_key) WHERE idempotency_key IS NOT NULL',
                   v_name || '_idempotency_key_idx', v_name);
    EXECUTE format('CREATE INDEX %I ON %I ((coalesce(finished_at, updated_at))) WHERE status = ''failed''',
                   v_name || '_failed_idx', v_name);
    EXECUTE format('WITH moved AS (DELETE FROM jobs_finished_overflow o WHERE o.finished_at >= $1 AND o.finished_at < $2 '
                   'RETURNING o.*) INSERT INTO %I SELECT * FROM moved', v_name)
      USING v_day, v_next;
    EXECUTE format('ALTER TABLE jobs ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', v_name, v_day, v_next);
    INSERT INTO job_partitions (name, kind, lower_bound, upper_bound) VALUES (v_name, 'day', v_day, v_next);
    v_made := v_made + 1;
  END LOOP;
  RETURN v_made;
END
$function$;


CREATE OR REPLACE FUNCTION jobs_keys_deleted()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
AS $function$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = OLD.id) THEN
    DELETE FROM job_keys k WHERE k.idempotency_key = OLD.idempotency_key AND k.job_id = OLD.id;
  END IF;
  RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION jobs_keys_truncated()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
AS $function$
BEGIN
  DELETE FROM job_keys k WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = k.job_id);
  RETURN NULL;
END
$function$;

DO $$
BEGIN
  EXECUTE format('ALTER FUNCTION jobs_count_row_inserted() SET search_path = %I, pg_temp', current_schema());
  EXECUTE format('ALTER FUNCTION jobs_route_moved() SET search_path = %I, pg_temp', current_schema());
  EXECUTE format('ALTER FUNCTION jobs_partitions_ensure(integer) SET search_path = %I, pg_temp', current_schema());
  EXECUTE format('ALTER FUNCTION jobs_keys_deleted() SET search_path = %I, pg_temp', current_schema());
  EXECUTE format('ALTER FUNCTION jobs_keys_truncated() SET search_path = %I, pg_temp', current_schema());
END
$$;
REVOKE EXECUTE ON FUNCTION jobs_partitions_ensure(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_partitions_ensure(integer) TO dte_reaper;

CREATE TRIGGER jobs_route BEFORE UPDATE OF status, finished_at ON jobs
  FOR EACH ROW
  WHEN ((OLD.status IN ('completed', 'failed')) IS DISTINCT FROM (NEW.status IN ('completed', 'failed'))
        OR OLD.finished_at IS DISTINCT FROM NEW.finished_at)
  EXECUTE FUNCTION jobs_route_moved();

CREATE TRIGGER jobs_count_inserted BEFORE INSERT ON jobs
  FOR EACH ROW
  WHEN (current_setting('dte.engine_counts', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION jobs_count_row_inserted();

CREATE TRIGGER jobs_count_updated AFTER UPDATE OF status ON jobs
  FOR EACH ROW
  WHEN (NEW.status IN ('completed', 'failed') AND OLD.status IS DISTINCT FROM NEW.status
        AND current_setting('dte.engine_counts', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION jobs_count_row_updated();

-- A job deleted or truncated by hand frees its idempotency key (functions/keys.sql).
CREATE TRIGGER jobs_keys_deleted AFTER DELETE ON jobs
  FOR EACH ROW
  WHEN (OLD.idempotency_key IS NOT NULL AND current_setting('dte.engine_counts', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION jobs_keys_deleted();
CREATE TRIGGER jobs_keys_truncated AFTER TRUNCATE ON jobs
  FOR EACH STATEMENT
  EXECUTE FUNCTION jobs_keys_truncated();

-- Today's partition and a week ahead (the reaper keeps a week ahead from here on).
SELECT jobs_partitions_ensure(7);
