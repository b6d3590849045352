-- The api's enqueue statements: jobs_enqueue_unkeyed and jobs_enqueue_keyed (idempotency keys)
-- for this release; jobs_enqueue and jobs_enqueue_columns for the previous release's api.
-- Each counts what it inserted itself (`submitted`, in the same statement), with
-- dte.engine_counts set to 'on' around that statement, which keeps the row counting triggers
-- out (issue 21; see counters.sql).
--
-- Source of truth for these functions (migrations/README.md, "Function files").

CREATE OR REPLACE FUNCTION jobs_enqueue(p_rows json, p_max_attempts integer, p_timed boolean, OUT o_ids text, OUT o_lease_seconds integer, OUT o_created_at_ms double precision, OUT o_run_at_ms text)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  PERFORM set_config('dte.engine_counts', 'on', true);
  WITH ins AS (
    INSERT INTO jobs_live (queue, task_type, payload, priority, run_at, max_attempts)
    SELECT coalesce(x.queue, 'default'), x.type, coalesce(x.payload, 'null'::jsonb), coalesce(x.priority, 0),
           coalesce(x.run_at, now() + make_interval(secs => coalesce(x.delay, 0))),
           coalesce(x.max_attempts, p_max_attempts)
      FROM json_to_recordset(p_rows)
        AS x(queue text, type text, payload jsonb, priority int, run_at timestamptz, delay float8,
             max_attempts int)
    RETURNING jobs_live.id, jobs_live.lease_seconds, jobs_live.run_at, jobs_live.created_at
  ), counted AS (
    INSERT INTO job_counter_deltas (submitted) SELECT count(*) FROM ins HAVING count(*) > 0
  )
  SELECT string_agg(ins.id::text, ',' ORDER BY ins.id), min(ins.lease_seconds),
         (extract(epoch FROM min(ins.created_at)) * 1000)::float8,
         CASE WHEN p_timed
              THEN string_agg(((extract(epoch FROM ins.run_at) * 1000)::float8)::text, ',' ORDER BY ins.id)
         END
    INTO o_ids, o_lease_seconds, o_created_at_ms, o_run_at_ms
    FROM ins;
  PERFORM set_config('dte.engine_counts', '', true);
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_enqueue(json, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_enqueue(json, integer, boolean) TO dte_api;

CREATE OR REPLACE FUNCTION jobs_enqueue_columns(p_types text[], p_payloads jsonb, p_queues text[], p_priorities integer[], p_run_ats timestamp with time zone[], p_delays double precision[], p_max_attempts integer[], p_default_max_attempts integer, p_timed boolean, OUT o_ids text, OUT o_lease_seconds integer, OUT o_created_at_ms double precision, OUT o_run_at_ms text)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO :"schema", pg_temp
AS $function$
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
    RAISE EXCEPTION 'jobs_enqueue_columns: every column needs one element per row (% types)', v_rows
      USING ERRCODE = '22023';
  END IF;
  PERFORM set_config('dte.engine_counts', 'on', true);
  WITH ins AS (
    INSERT INTO jobs_live (queue, task_type, payload, priority, run_at, max_attempts)
    SELECT coalesce(x.queue, 'default'), x.type, x.payload, coalesce(x.priority, 0),
           coalesce(x.run_at, now() + make_interval(secs => coalesce(x.delay, 0))),
           coalesce(x.max_attempts, p_default_max_attempts)
      FROM ROWS FROM (
             unnest(p_types), jsonb_array_elements(p_payloads), unnest(p_queues), unnest(p_priorities),
             unnest(p_run_ats), unnest(p_delays), unnest(p_max_attempts)
           ) AS x(type, payload, queue, priority, run_at, delay, max_attempts)
    RETURNING jobs_live.id, jobs_live.lease_seconds, jobs_live.run_at, jobs_live.created_at
  ), counted AS (
    INSERT INTO job_counter_deltas (submitted) SELECT count(*) FROM ins HAVING count(*) > 0
  )
  SELECT string_agg(ins.id::text, ',' ORDER BY ins.id), min(ins.lease_seconds),
         (extract(epoch FROM min(ins.created_at)) * 1000)::float8,
         CASE WHEN p_timed
              THEN string_agg(((extract(epoch FROM ins.run_at) * 1000)::float8)::text, ',' ORDER BY ins.id)
         END
    INTO o_ids, o_lease_seconds, o_created_at_ms, o_run_at_ms
    FROM ins;
  PERFORM set_config('dte.engine_counts', '', true);
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_enqueue_columns(text[], jsonb, text[], integer[], timestamp with time zone[], double precision[], integer[], integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_enqueue_columns(text[], jsonb, text[], integer[], timestamp with time zone[], double precision[], integer[], integer, boolean) TO dte_api;

CREATE OR REPLACE FUNCTION jobs_enqueue_keyed(p_types text[], p_payloads jsonb, p_queues text[], p_priorities integer[], p_run_ats timestamp with time zone[], p_delays double precision[], p_max_attempts integer[], p_default_max_attempts integer, p_created_by text, p_keys text[], p_hashes text[])
 RETURNS TABLE(o_id bigint, o_idempotency_key text, o_lease_seconds integer, o_run_at_ms double precision, o_created_at_ms double precision)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO :"schema", pg_temp
AS $function$
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
  PERFORM set_config('dte.engine_counts', 'on', true);
  -- Keys first (job_keys, 0022: the partitioned table cannot hold a unique index on the key
  -- alone), each with the id of the job drawn for it, in key order as before (concurrent
  -- requests lock keys in the same order); a job only for a key that was new, or for a row
  -- without a key. Within the request the first row of a key wins, as before.
  RETURN QUERY
  WITH rows AS (
    SELECT x.type, x.payload, x.queue, x.priority, x.run_at, x.delay, x.max_attempts, x.key, x.hash, x.ord,
           row_number() OVER (PARTITION BY x.key ORDER BY x.ord) AS nth
      FROM ROWS FROM (unnest(p_types), jsonb_array_elements(p_payloads), unnest(p_queues),
                      unnest(p_priorities), unnest(p_run_ats), unnest(p_delays),
                      unnest(p_max_attempts), unnest(p_keys), unnest(p_hashes)) WITH ORDINALITY
           AS x(type, payload, queue, priority, run_at, delay, max_attempts, key, hash, ord)
  ), keys AS (
    INSERT INTO job_keys AS k (idempotency_key, job_id, request_hash, created_by)
    SELECT r.key, nextval('job_ids'), r.hash, p_created_by FROM rows r
     WHERE r.key IS NOT NULL AND r.nth = 1 ORDER BY r.key
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING k.idempotency_key, k.job_id
  ), ins AS (
  INSERT INTO jobs_live (id, queue, task_type, payload, priority, run_at, max_attempts, idempotency_key,
                         request_hash, created_by)
  SELECT coalesce(k.job_id, nextval('job_ids')), coalesce(r.queue, 'default'), r.type, r.payload,
         coalesce(r.priority, 0), coalesce(r.run_at, now() + make_interval(secs => coalesce(r.delay, 0))),
         coalesce(r.max_attempts, p_default_max_attempts), r.key, r.hash, p_created_by
    FROM rows r LEFT JOIN keys k ON k.idempotency_key = r.key
   WHERE r.key IS NULL OR k.job_id IS NOT NULL AND r.nth = 1
   ORDER BY r.key, r.ord
  RETURNING jobs_live.id, jobs_live.idempotency_key, jobs_live.lease_seconds,
            (extract(epoch FROM jobs_live.run_at) * 1000)::float8 AS run_at_ms,
            (extract(epoch FROM jobs_live.created_at) * 1000)::float8 AS created_at_ms
  ), counted AS (
    INSERT INTO job_counter_deltas (submitted) SELECT count(*) FROM ins HAVING count(*) > 0
  )
  SELECT ins.id, ins.idempotency_key, ins.lease_seconds, ins.run_at_ms, ins.created_at_ms FROM ins;
  PERFORM set_config('dte.engine_counts', '', true);
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_enqueue_keyed(text[], jsonb, text[], integer[], timestamp with time zone[], double precision[], integer[], integer, text, text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_enqueue_keyed(text[], jsonb, text[], integer[], timestamp with time zone[], double precision[], integer[], integer, text, text[], text[]) TO dte_api;

CREATE OR REPLACE FUNCTION jobs_enqueue_unkeyed(p_types text[], p_payloads jsonb, p_queues text[], p_priorities integer[], p_run_ats timestamp with time zone[], p_delays double precision[], p_max_attempts integer[], p_default_max_attempts integer, p_created_by text, p_timed boolean, OUT o_ids text, OUT o_lease_seconds integer, OUT o_created_at_ms double precision, OUT o_run_at_ms text)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO :"schema", pg_temp
AS $function$
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
  PERFORM set_config('dte.engine_counts', 'on', true);
  WITH ins AS (
    INSERT INTO jobs_live (queue, task_type, payload, priority, run_at, max_attempts, created_by)
    SELECT coalesce(x.queue, 'default'), x.type, x.payload, coalesce(x.priority, 0),
           coalesce(x.run_at, now() + make_interval(secs => coalesce(x.delay, 0))),
           coalesce(x.max_attempts, p_default_max_attempts), p_created_by
      FROM ROWS FROM (
             unnest(p_types), jsonb_array_elements(p_payloads), unnest(p_queues), unnest(p_priorities),
             unnest(p_run_ats), unnest(p_delays), unnest(p_max_attempts)
           ) AS x(type, payload, queue, priority, run_at, delay, max_attempts)
    RETURNING jobs_live.id, jobs_live.lease_seconds, jobs_live.run_at, jobs_live.created_at
  ), counted AS (
    INSERT INTO job_counter_deltas (submitted) SELECT count(*) FROM ins HAVING count(*) > 0
  )
  SELECT string_agg(ins.id::text, ',' ORDER BY ins.id), min(ins.lease_seconds),
         (extract(epoch FROM min(ins.created_at)) * 1000)::float8,
         CASE WHEN p_timed
              THEN string_agg(((extract(epoch FROM ins.run_at) * 1000)::float8)::text, ',' ORDER BY ins.id)
         END
    INTO o_ids, o_lease_seconds, o_created_at_ms, o_run_at_ms
    FROM ins;
  PERFORM set_config('dte.engine_counts', '', true);
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_enqueue_unkeyed(text[], jsonb, text[], integer[], timestamp with time zone[], double precision[], integer[], integer, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_enqueue_unkeyed(text[], jsonb, text[], integer[], timestamp with time zone[], double precision[], integer[], integer, text, boolean) TO dte_api;
