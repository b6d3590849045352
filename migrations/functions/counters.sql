-- The counting triggers' functions on jobs and the reaper's compaction of old deltas into
-- per-minute history rows. jobs_count_inserted / jobs_count_updated are the statement triggers'
-- functions of 0002/0005, no longer attached since 0013 (kept until a later release).
--
-- Source of truth for these functions (migrations/README.md, "Function files").

CREATE OR REPLACE FUNCTION jobs_count_inserted()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
BEGIN
  INSERT INTO job_counter_deltas (submitted, completed, failed)
  SELECT count(*),
         count(*) FILTER (WHERE status = 'completed'),
         count(*) FILTER (WHERE status = 'failed')
  FROM inserted_rows
  HAVING count(*) > 0;
  RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION jobs_count_updated()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status IN ('completed', 'failed')) THEN
    RETURN NULL;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM old_rows WHERE status IN ('completed', 'failed')) THEN
    INSERT INTO job_counter_deltas (completed, failed)
    SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed')
    FROM new_rows;
    RETURN NULL;
  END IF;
  INSERT INTO job_counter_deltas (completed, failed)
  SELECT c, f
  FROM (
    SELECT count(*) FILTER (WHERE n.status = 'completed' AND o.status <> 'completed') AS c,
           count(*) FILTER (WHERE n.status = 'failed' AND o.status <> 'failed') AS f
    FROM new_rows n JOIN old_rows o ON o.id = n.id
  ) s
  WHERE c > 0 OR f > 0;
  RETURN NULL;
END
$function$;

-- The row counting triggers' functions (migration 0013): one delta row per job that a writer
-- other than the engine's functions inserted or moved into `completed` / `failed`. The engine's
-- functions count themselves and set dte.engine_counts to 'on' (set_config, transaction-local)
-- just before the statement they count and back to '' just after it; the triggers' WHEN reads it.
-- Not a `SET` clause of the function: PostgreSQL refuses a custom parameter there to an owner who
-- is not superuser (RDS: "permission denied to set parameter"), while set_config is allowed. An
-- error in that statement aborts the transaction (or the caller's savepoint), which undoes the
-- setting with it.
-- Since 0022 a BEFORE INSERT trigger (it returns NEW): an UPDATE that moves a row to another
-- partition of `jobs` (a class change, live <-> finished) is carried out as a DELETE and an INSERT,
-- which fires this trigger on the destination and no AFTER UPDATE trigger. jobs_route_moved, run
-- just before on the source, marks the row in dte.moving (id and old status, transaction-local),
-- so such a row is counted as the UPDATE it is: into `completed` / `failed` when it went there,
-- and never as a new submission. A hand-written INSERT with an idempotency key also writes its
-- job_keys row, where a duplicate key fails as the unique index on `jobs` used to fail it.
CREATE OR REPLACE FUNCTION jobs_count_row_inserted()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
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

-- The BEFORE UPDATE trigger jobs_route (0022), for an UPDATE that changes a row's class (queued /
-- running <-> completed / failed) or its finished_at: finished_at follows the status (NULL while
-- live, kept or now() once finished), which is what routes the row to jobs_live or to its day's
-- partition, and the row is marked for jobs_count_row_inserted in case it moves.
CREATE OR REPLACE FUNCTION jobs_route_moved()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
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

CREATE OR REPLACE FUNCTION jobs_count_row_updated()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
BEGIN
  INSERT INTO job_counter_deltas (completed, failed)
  VALUES ((NEW.status = 'completed')::int, (NEW.status = 'failed')::int);
  RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION job_counters_compact(p_older_than_seconds double precision, p_history_hours integer)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
DECLARE
  v_moved bigint;
BEGIN
  WITH moved AS (
    DELETE FROM job_counter_deltas d
     WHERE (NOT d.compacted AND d.at < now() - make_interval(secs => p_older_than_seconds))
        OR (d.compacted AND d.at < now() - make_interval(hours => p_history_hours))
    RETURNING d.at, d.submitted, d.completed, d.failed, d.recovered
  ), folded AS (
    INSERT INTO job_counter_deltas (at, compacted, submitted, completed, failed, recovered)
    SELECT CASE WHEN moved.at < now() - make_interval(hours => p_history_hours) THEN '-infinity'::timestamptz
                ELSE date_trunc('minute', moved.at) END,
           true, sum(moved.submitted), sum(moved.completed), sum(moved.failed), sum(moved.recovered)
      FROM moved GROUP BY 1
  )
  SELECT count(*) INTO v_moved FROM moved;
  RETURN v_moved;
END
$function$;
REVOKE EXECUTE ON FUNCTION job_counters_compact(double precision, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION job_counters_compact(double precision, integer) TO dte_reaper;
