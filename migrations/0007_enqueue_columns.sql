-- The unkeyed batch enqueue with its rows sent as columns: `jobs_enqueue_columns`.
--
-- jobs_enqueue (migration 0006) reads one json document with json_to_recordset, which builds a
-- lookup of each row's fields before it takes the columns out. For 20,000 plain jobs that read
-- alone took 52-64 ms of a 195 ms insert; the same rows as a text[] of types zipped with one
-- jsonb array of payloads (ROWS FROM (unnest(…), jsonb_array_elements(…))) read in 11-13 ms
-- (3 runs each, same server, 2026-12-01). The fields most batches leave at their default
-- (queue, priority, run_at, delay, max_attempts) travel as arrays only when some row sets
-- them, NULL otherwise, and a NULL element takes the default: ROWS FROM pads a shorter or
-- NULL array with NULLs, so the function first checks that every array it got has one
-- element per row.
--
-- Expand-only: jobs_enqueue stays for the previous release's code. Same grants: only dte_api
-- (and the owner) may run it.
CREATE FUNCTION jobs_enqueue_columns(
  p_types text[],
  p_payloads jsonb,
  p_queues text[],
  p_priorities integer[],
  p_run_ats timestamptz[],
  p_delays float8[],
  p_max_attempts integer[],
  p_default_max_attempts integer,
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
    RAISE EXCEPTION 'jobs_enqueue_columns: every column needs one element per row (% types)', v_rows
      USING ERRCODE = '22023';
  END IF;
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

REVOKE EXECUTE ON FUNCTION jobs_enqueue_columns(text[], jsonb, text[], integer[], timestamptz[], float8[], integer[], integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_enqueue_columns(text[], jsonb, text[], integer[], timestamptz[], float8[], integer[], integer, boolean) TO dte_api;
