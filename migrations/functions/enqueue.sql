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
    INSERT INTO jobs (queue, task_type, payload, priority, run_at, max_attempts)
    SELECT coalesce(x.queue, 'default'), x.type, coalesce(x.payload, 'null'::jsonb), coalesce(x.priority, 0),
           coalesce(x.run_at, now() + make_interval(secs => coalesce(x.delay, 0))),
           coalesce(x.max_attempts, p_max_attempts)
      FROM json_to_recordset(p_rows)
        AS x(queue text, type text, payload jsonb, priority int, run_at timestamptz, delay float8,
             max_attempts int)
    RETURNING jobs.id, jobs.lease_seconds, jobs.run_at, jobs.created_at
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
    INSERT INTO jobs (queue, task_type, payload, priority, run_at, max_attempts)
    SELECT coalesce(x.queue, 'default'), x.type, x.payload, coalesce(x.priority, 0),
           coalesce(x.run_at, now() + make_interval(secs => coalesce(x.delay, 0))),
           coalesce(x.max_attempts, p_default_max_attempts)
      FROM ROWS FROM (
             unnest(p_types), jsonb_array_elements(p_payloads), unnest(p_queues), unnest(p_priorities),
             unnest(p_run_ats), unnest(p_delays), unnest(p_max_attempts)
           ) AS x(type, payload, queue, priority, run_at, delay, max_attempts)
    RETURNING jobs.id, jobs.lease_seconds, jobs.run_at, jobs.created_at
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
  RETURN QUERY
  WITH ins AS (
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
            (extract(epoch FROM jobs.run_at) * 1000)::float8 AS run_at_ms,
            (extract(epoch FROM jobs.created_at) * 1000)::float8 AS created_at_ms
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
    INSERT INTO jobs (queue, task_type, payload, priority, run_at, max_attempts, created_by)
    SELECT coalesce(x.queue, 'default'), x.type, x.payload, coalesce(x.priority, 0),
           coalesce(x.run_at, now() + make_interval(secs => coalesce(x.delay, 0))),
           coalesce(x.max_attempts, p_default_max_attempts), p_created_by
      FROM ROWS FROM (
             unnest(p_types), jsonb_array_elements(p_payloads), unnest(p_queues), unnest(p_priorities),
             unnest(p_run_ats), unnest(p_delays), unnest(p_max_attempts)
           ) AS x(type, payload, queue, priority, run_at, delay, max_attempts)
    RETURNING jobs.id, jobs.lease_seconds, jobs.run_at, jobs.created_at
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
