-- Roles that cannot forge state: the api and the reaper reach the tables only through their own
-- statements, and nobody but the counting triggers writes the counter deltas.
--
-- Until now dte_api held INSERT and UPDATE on jobs and INSERT on job_counter_deltas, dte_reaper
-- UPDATE and DELETE on jobs and INSERT and DELETE on the deltas. Logged in as the api one could
-- insert a job already `completed`, complete any running job around the fence, rewrite payloads
-- and lease tokens, and add rows to the deltas (the "exact" phase6_* totals). Now:
--
--   dte_api     SELECT on jobs (get, idempotent lookup); INSERT on the columns an enqueue names
--               (below); EXECUTE on jobs_enqueue, jobs_enqueue_columns, jobs_enqueue_unkeyed,
--               jobs_enqueue_keyed, jobs_cancel. No UPDATE or DELETE on jobs, nothing on the
--               deltas, no INSERT on job_audit (no api statement ever wrote it).
--   dte_reaper  SELECT on jobs and the deltas (the ledger export); EXECUTE on
--               jobs_requeue_expired, jobs_prune_finished, job_counters_compact. No UPDATE or
--               DELETE on jobs, no INSERT or DELETE on the deltas.
--   everyone    no INSERT, UPDATE or DELETE on job_counter_deltas: the trigger functions of
--               0002/0005 and the three functions here run as the owner (SECURITY DEFINER).
--               dte_consumer's table grants on jobs are migration 0008's.
--
-- Every SECURITY DEFINER function has a fixed search_path: the schema this migration runs in
-- (public when deployed, one per test file), then pg_temp, so nothing a caller puts on its own
-- path (or in its temporary schema) is resolved inside them. EXECUTE is revoked from PUBLIC on
-- each. The SET clauses last only while the function runs: no session state, RDS Proxy and
-- PgBouncer stay unpinned. The functions are PL/pgSQL, so their plans are cached per backend.
--
-- Expand/contract. The previous release's code keeps working, except:
--   * its api cancel (an UPDATE sent as text) is refused (42501, answered as a 500) until the
--     new api code is deployed: it is exactly the write that let the api rewrite any job;
--   * its reaper (UPDATE, DELETE and a delta INSERT sent as text) fails its runs until the new
--     reaper code is deployed: expired leases wait for the next run of the new code, nothing is
--     lost (the counters are written in the same statement or not at all).
-- Its unkeyed enqueue calls jobs_enqueue / jobs_enqueue_columns, unchanged but for running as
-- the owner, and its keyed enqueue (an INSERT sent as text) names only the columns granted
-- below; neither can set a status, attempts, a lease or a result. A later release revokes the
-- column INSERT once no running code sends it.

-- Who created a job: the JWT `sub` or the IAM caller's ARN, NULL when unknown (taskctl, the
-- local engine, rows older than this migration). Nullable, no default: no rewrite. The CHECK is
-- NOT VALID (nothing to scan: every existing row is NULL) and still holds for every new row.
ALTER TABLE jobs ADD COLUMN created_by text;
ALTER TABLE jobs ADD CONSTRAINT jobs_created_by_check
  CHECK (created_by IS NULL OR length(created_by) BETWEEN 1 AND 2048) NOT VALID;

-- The unkeyed enqueue of jobs_enqueue_columns (0007) plus the creator. Same columns, same checks.
CREATE FUNCTION jobs_enqueue_unkeyed(
  p_types text[],
  p_payloads jsonb,
  p_queues text[],
  p_priorities integer[],
  p_run_ats timestamptz[],
  p_delays float8[],
  p_max_attempts integer[],
  p_default_max_attempts integer,
  p_created_by text,
  p_timed boolean,
  OUT o_ids text,
  OUT o_lease_seconds integer,
  OUT o_created_at_ms float8,
  OUT o_run_at_ms text
)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict error
DECLARE
  v_rows integer := cardinality(p_types);
BEGIN
  IF jsonb_typeof(p_payloads) IS DISTINCT FROM 'array'
     OR jsonb_array_length(p_payloads) <> v_rows
     OR cardinality(p_queues) <> v_rows
     OR cardinality(p_priorities) <> v_rows
     OR cardinality(p_run_ats) <> v_rows
     OR cardinality(p_delays) <> v_rows
     OR cardinality(p_max_attempts) <> v_rows THEN
    RAISE EXCEPTION 'jobs_enqueue_unkeyed: every column needs one element per row (% types)', v_rows
      USING ERRCODE = '22023';
  END IF;
  WITH ins AS (
    INSERT INTO jobs (queue, task_type, payload, priority, run_at, max_attempts, created_by)
    SELECT coalesce(x.queue, 'default'), x.type, x.payload, coalesce(x.priority, 0),
           coalesce(x.run_at, now() + make_interval(secs => coalesce(x.delay, 0))),
           coalesce(x.max_attempts, p_default_max_attempts), p_created_by
      FROM ROWS FROM (
             unnest(p_types), jsonb_array_elements(p_payloads), unnest(p_queues), unnest(p_priorities),
             unnest(p_run_ats), unnest(p_delays), unnest(p_max_attempts)
           ) AS x(type, payload, queue, priority, run_at, delay, max_attempts)
    RETURNING jobs.id, jobs.lease_seconds, jobs.run_at, jobs.created_at
  )
  SELECT string_agg(ins.id::text, ',' ORDER BY ins.id), min(ins.lease_seconds),
         (extract(epoch FROM min(ins.created_at)) * 1000)::float8,
         CASE WHEN p_timed
              THEN string_agg(((extract(epoch FROM ins.run_at) * 1000)::float8)::text, ',' ORDER BY ins.id)
         END
    INTO o_ids, o_lease_seconds, o_created_at_ms, o_run_at_ms
    FROM ins;
END
$$;

-- The keyed enqueue enqueueJobs.ts sent as text: the same columns plus each row's key and
-- request hash. Rows whose key exists already are skipped (ON CONFLICT DO NOTHING) and resolved
-- by the caller; keyed rows are inserted in key order (batches taking the same keys in
-- different orders deadlocked). A row per inserted job.
CREATE FUNCTION jobs_enqueue_keyed(
  p_types text[],
  p_payloads jsonb,
  p_queues text[],
  p_priorities integer[],
  p_run_ats timestamptz[],
  p_delays float8[],
  p_max_attempts integer[],
  p_default_max_attempts integer,
  p_created_by text,
  p_keys text[],
  p_hashes text[]
)
RETURNS TABLE (
  o_id bigint,
  o_idempotency_key text,
  o_lease_seconds integer,
  o_run_at_ms float8,
  o_created_at_ms float8
)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict error
DECLARE
  v_rows integer := cardinality(p_types);
BEGIN
  IF jsonb_typeof(p_payloads) IS DISTINCT FROM 'array'
     OR jsonb_array_length(p_payloads) <> v_rows
     OR cardinality(p_queues) <> v_rows
     OR cardinality(p_priorities) <> v_rows
     OR cardinality(p_run_ats) <> v_rows
     OR cardinality(p_delays) <> v_rows
     OR cardinality(p_max_attempts) <> v_rows
     OR cardinality(p_keys) <> v_rows
     OR cardinality(p_hashes) <> v_rows THEN
    RAISE EXCEPTION 'jobs_enqueue_keyed: every column needs one element per row (% types)', v_rows
      USING ERRCODE = '22023';
  END IF;
  RETURN QUERY
  INSERT INTO jobs (queue, task_type, payload, priority, run_at, max_attempts, idempotency_key,
                    request_hash, created_by)
  SELECT coalesce(x.queue, 'default'), x.type, x.payload, coalesce(x.priority, 0),
         coalesce(x.run_at, now() + make_interval(secs => coalesce(x.delay, 0))),
         coalesce(x.max_attempts, p_default_max_attempts), x.key, x.hash, p_created_by
    FROM ROWS FROM (unnest(p_types), jsonb_array_elements(p_payloads), unnest(p_queues),
                    unnest(p_priorities), unnest(p_run_ats), unnest(p_delays),
                    unnest(p_max_attempts), unnest(p_keys), unnest(p_hashes)) WITH ORDINALITY
         AS x(type, payload, queue, priority, run_at, delay, max_attempts, key, hash, ord)
   ORDER BY x.key, x.ord
  ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING jobs.id, jobs.idempotency_key, jobs.lease_seconds,
            (extract(epoch FROM jobs.run_at) * 1000)::float8,
            (extract(epoch FROM jobs.created_at) * 1000)::float8;
END
$$;

-- Safe cancel (cancelJob.ts sent it as text): a queued or running job ends `failed` with the
-- reason, who and when in last_error; a running job's worker is fenced out. With
-- `p_creator_only`, only a job `p_caller` created is touched (a NULL caller touches nothing).
-- Returns the row as it is now, or nothing when the job is missing, terminal or not the caller's.
CREATE FUNCTION jobs_cancel(
  p_id bigint,
  p_reason text,
  p_actor text,
  p_creator_only boolean,
  p_caller text
)
RETURNS SETOF jobs
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict error
BEGIN
  RETURN QUERY
  UPDATE jobs j
     SET status = 'failed', finished_at = now(), updated_at = now(), locked_at = NULL,
         last_error = jsonb_build_object('name', 'Cancelled', 'message', p_reason, 'actor', p_actor,
                                         'at', now(), 'previousStatus', j.status, 'attempt', j.attempts)
   WHERE j.id = p_id AND j.status IN ('queued', 'running')
     AND (NOT p_creator_only OR j.created_by = p_caller)
  RETURNING j.*;
END
$$;

-- The reaper's recovery (requeueExpiredLeases.ts sent it as text): up to `p_limit` running jobs
-- whose lease expired are requeued, or failed when their attempts are used up, and counted in
-- `recovered` in the same statement. SKIP LOCKED: several reapers never take a job twice.
CREATE FUNCTION jobs_requeue_expired(p_limit integer, OUT o_requeued bigint, OUT o_failed bigint)
LANGUAGE plpgsql AS $$
#variable_conflict error
BEGIN
  WITH expired AS (
    SELECT e.id FROM jobs e
     WHERE e.status = 'running' AND e.locked_at + make_interval(secs => e.lease_seconds) < now()
     ORDER BY e.locked_at
     LIMIT p_limit
     FOR UPDATE SKIP LOCKED
  ), taken AS (
    UPDATE jobs j SET
      status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END,
      finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
      last_error = jsonb_build_object(
        'name', 'LeaseExpired',
        'message', CASE WHEN j.attempts >= j.max_attempts
          THEN format('lease expired on attempt %s of %s; attempts exhausted', j.attempts, j.max_attempts)
          ELSE format('lease expired on attempt %s of %s; requeued', j.attempts, j.max_attempts) END,
        'attempt', j.attempts, 'worker', j.locked_by, 'lockedAt', j.locked_at, 'recoveredAt', now()),
      locked_at = NULL,
      locked_by = NULL,
      updated_at = now()
    WHERE j.id = ANY (ARRAY(SELECT expired.id FROM expired))
    RETURNING j.status
  ), counted AS (
    INSERT INTO job_counter_deltas (recovered)
    SELECT count(*) FROM taken HAVING count(*) > 0
  )
  SELECT count(*) FILTER (WHERE taken.status = 'queued'), count(*) FILTER (WHERE taken.status = 'failed')
    INTO o_requeued, o_failed
    FROM taken;
END
$$;

-- Pruning (pruneFinished.ts sent it as text): deletes up to `p_limit` completed or failed jobs
-- finished more than `p_older_than_days` ago; never a queued or running one. Returns how many.
CREATE FUNCTION jobs_prune_finished(p_older_than_days float8, p_limit integer) RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict error
DECLARE
  v_deleted bigint;
BEGIN
  DELETE FROM jobs WHERE jobs.id IN (
    SELECT f.id FROM jobs f
     WHERE f.status IN ('completed', 'failed')
       AND coalesce(f.finished_at, f.updated_at) < now() - make_interval(secs => p_older_than_days * 86400)
     LIMIT p_limit);
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  RETURN v_deleted;
END
$$;

-- Compaction (counters.ts sent it as text): delta rows older than `p_older_than_seconds` fold
-- into one row per minute, minute rows older than `p_history_hours` into one base row. The
-- DELETE and INSERT are one statement, so every total is the same before and after, whatever
-- the arguments. Returns how many rows were folded.
CREATE FUNCTION job_counters_compact(p_older_than_seconds float8, p_history_hours integer) RETURNS bigint
LANGUAGE plpgsql AS $$
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
$$;

-- Owner's rights and a fixed search_path for every function that writes on a runtime role's
-- behalf, the counting triggers included (they fire for every writer: the api, the consumer,
-- the reaper, and the runbook's hand-written SQL run by the owner or an operator).
DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY[
    'jobs_count_inserted()',
    'jobs_count_updated()',
    'jobs_enqueue(json, integer, boolean)',
    'jobs_enqueue_columns(text[], jsonb, text[], integer[], timestamptz[], float8[], integer[], integer, boolean)',
    'jobs_enqueue_unkeyed(text[], jsonb, text[], integer[], timestamptz[], float8[], integer[], integer, text, boolean)',
    'jobs_enqueue_keyed(text[], jsonb, text[], integer[], timestamptz[], float8[], integer[], integer, text, text[], text[])',
    'jobs_cancel(bigint, text, text, boolean, text)',
    'jobs_requeue_expired(integer)',
    'jobs_prune_finished(float8, integer)',
    'job_counters_compact(float8, integer)'
  ] LOOP
    EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp',
                   f::regprocedure, current_schema());
  END LOOP;
END
$$;

REVOKE EXECUTE ON FUNCTION jobs_enqueue_unkeyed(text[], jsonb, text[], integer[], timestamptz[], float8[], integer[], integer, text, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION jobs_enqueue_keyed(text[], jsonb, text[], integer[], timestamptz[], float8[], integer[], integer, text, text[], text[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION jobs_cancel(bigint, text, text, boolean, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION jobs_requeue_expired(integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION jobs_prune_finished(float8, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION job_counters_compact(float8, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_enqueue_unkeyed(text[], jsonb, text[], integer[], timestamptz[], float8[], integer[], integer, text, boolean) TO dte_api;
GRANT EXECUTE ON FUNCTION jobs_enqueue_keyed(text[], jsonb, text[], integer[], timestamptz[], float8[], integer[], integer, text, text[], text[]) TO dte_api;
GRANT EXECUTE ON FUNCTION jobs_cancel(bigint, text, text, boolean, text) TO dte_api;
GRANT EXECUTE ON FUNCTION jobs_requeue_expired(integer) TO dte_reaper;
GRANT EXECUTE ON FUNCTION jobs_prune_finished(float8, integer) TO dte_reaper;
GRANT EXECUTE ON FUNCTION job_counters_compact(float8, integer) TO dte_reaper;

-- The table writes go. The api keeps INSERT on exactly the columns the previous release's keyed
-- enqueue names (status, attempts, lease, result and times take their defaults); created_by is
-- not among them: the new code sets it through the functions only.
REVOKE INSERT, UPDATE, DELETE ON jobs FROM dte_api, dte_reaper;
GRANT INSERT (queue, task_type, payload, priority, run_at, max_attempts, idempotency_key, request_hash)
  ON jobs TO dte_api;
REVOKE INSERT, UPDATE, DELETE ON job_counter_deltas FROM dte_api, dte_consumer, dte_reaper;
REVOKE INSERT ON job_audit FROM dte_api;
