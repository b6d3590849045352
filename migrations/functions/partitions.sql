-- The finished partitions of `jobs` (migration 0022): made ahead by the reaper, dropped after the
-- retention. Bounds are UTC days; job_partitions lists them (and jobs_legacy, the table 0022
-- replaced, when it kept finished rows).
--
-- Source of truth for these functions (migrations/README.md, "Function files").

-- Makes the partitions of today and the next p_days_ahead UTC days that do not exist yet, and
-- moves into each the rows that landed in jobs_finished_overflow meanwhile. A new partition is
-- built as a table of its own (indexes, and a CHECK that implies its bound, so ATTACH needs no
-- scan of it) and attached: ATTACH takes SHARE UPDATE EXCLUSIVE on `jobs`, which the engine's
-- statements do not conflict with, and ACCESS EXCLUSIVE on the small default partition. The
-- lock_timeout gives up instead of queueing the readers of `jobs` behind it; the next run tries
-- again, days ahead of need.
CREATE OR REPLACE FUNCTION jobs_partitions_ensure(p_days_ahead integer)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET lock_timeout TO '2s'
 SET search_path TO :"schema", pg_temp
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
    -- dte.engine_counts keeps jobs_keys_deleted (functions/keys.sql) out of this DELETE: the
    -- rows' new table is not attached yet when it would run, so it found them gone from `jobs`
    -- and freed their idempotency keys.
    PERFORM set_config('dte.engine_counts', 'on', true);
    EXECUTE format('WITH moved AS (DELETE FROM jobs_finished_overflow o WHERE o.finished_at >= $1 AND o.finished_at < $2 '
                   'RETURNING o.*) INSERT INTO %I SELECT * FROM moved', v_name)
      USING v_day, v_next;
    PERFORM set_config('dte.engine_counts', '', true);
    EXECUTE format('ALTER TABLE jobs ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', v_name, v_day, v_next);
    INSERT INTO job_partitions (name, kind, lower_bound, upper_bound) VALUES (v_name, 'day', v_day, v_next);
    v_made := v_made + 1;
  END LOOP;
  RETURN v_made;
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_partitions_ensure(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_partitions_ensure(integer) TO dte_reaper;

-- Deletes finished jobs older than p_older_than_days: first every partition wholly past it
-- (counted, detached and dropped: no DELETE, nothing for VACUUM), then, up to p_limit rows a
-- call, the old rows of jobs_legacy and jobs_finished_overflow (the tables a day does not
-- bound), then idempotency keys past it whose job is gone. A day's partition goes once its last
-- hour is past the retention: finished jobs are kept p_older_than_days to one day longer.
-- DETACH takes ACCESS EXCLUSIVE on `jobs` for a moment; the lock_timeout gives up rather than
-- queue the readers of `jobs` behind a long transaction, and the next run tries again.
CREATE OR REPLACE FUNCTION jobs_prune_finished(p_older_than_days double precision, p_limit integer)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET lock_timeout TO '2s'
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
DECLARE
  v_cutoff timestamptz := now() - make_interval(secs => p_older_than_days * 86400);
  v_deleted bigint := 0;
  v_rows bigint;
  v_part record;
BEGIN
  FOR v_part IN SELECT p.name FROM job_partitions p WHERE p.upper_bound <= v_cutoff ORDER BY p.upper_bound LOOP
    EXECUTE format('SELECT count(*) FROM %I', v_part.name) INTO v_rows;
    EXECUTE format('ALTER TABLE jobs DETACH PARTITION %I', v_part.name);
    EXECUTE format('DROP TABLE %I', v_part.name);
    DELETE FROM job_partitions p WHERE p.name = v_part.name;
    v_deleted := v_deleted + v_rows;
  END LOOP;
  IF v_deleted < p_limit THEN
    DELETE FROM jobs_finished_overflow o WHERE o.id IN (
      SELECT f.id FROM jobs_finished_overflow f WHERE f.finished_at < v_cutoff LIMIT p_limit - v_deleted);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    v_deleted := v_deleted + v_rows;
  END IF;
  IF v_deleted < p_limit AND EXISTS (SELECT 1 FROM job_partitions p WHERE p.name = 'jobs_legacy') THEN
    EXECUTE 'DELETE FROM jobs_legacy l WHERE l.id IN (SELECT f.id FROM jobs_legacy f '
            'WHERE f.status IN (''completed'', ''failed'') AND coalesce(f.finished_at, f.updated_at) < $1 LIMIT $2)'
      USING v_cutoff, p_limit - v_deleted;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    v_deleted := v_deleted + v_rows;
  END IF;
  DELETE FROM job_keys k WHERE k.idempotency_key IN (
    SELECT o.idempotency_key FROM job_keys o
     WHERE o.created_at < v_cutoff AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = o.job_id)
     LIMIT p_limit);
  RETURN v_deleted;
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_prune_finished(double precision, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_prune_finished(double precision, integer) TO dte_reaper;
