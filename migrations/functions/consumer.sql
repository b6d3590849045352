-- The consumer's writes besides the claim: complete, fail (with backoff), renew and release leases,
-- each fenced by the lease token.
--
-- Source of truth for these functions (migrations/README.md, "Function files").

CREATE OR REPLACE FUNCTION jobs_complete_batch(p_ids bigint[], p_tokens bigint[], p_results jsonb[])
 RETURNS bigint[]
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 -- As in jobs_claim_batch (claim.sql): by index, whatever the table's size when the plan was cached;
 -- jit off: the retention lookup's (disabled) scan of queues would pass jit_above_cost.
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
DECLARE
  v_ids bigint[];
  v_deleting text[];
BEGIN
  -- The completions as parallel arrays, read once by unnest: one primary-key probe of jobs_live
  -- per id (a nested loop from the unnest). Nothing restricts jobs_live alone, so no plan starts
  -- from it: `d.id = ANY (p_ids)` beside the join made the planner read the index by the array
  -- and re-read the unnest per row (O(n^2), issue 21; test/integration/handoff.test.ts), and
  -- `d.status = 'running'` as a filter of its own makes the plan depend on how many rows the
  -- statistics say are running. So the status is a column of the subquery (OFFSET 0 keeps it
  -- one), compared in the join.
  --
  -- A completed job leaves jobs_live (DELETE) for its day's partition (INSERT through `jobs`,
  -- which routes it), or for nowhere when its queue's retention is 'delete' (0022): no UPDATE of
  -- the live table's row, whose status sits in three partial-index predicates. Not an UPDATE that
  -- moves the row either: a concurrent locker of a moved row fails with SQLSTATE 40001, one of a
  -- deleted row skips it. The completions are counted here, in the same statement
  -- (dte.engine_counts, set around it, keeps the row counting triggers out: issue 21).
  v_deleting := ARRAY(SELECT q.name FROM queues q WHERE q.retention = 'delete');
  PERFORM set_config('dte.engine_counts', 'on', true);
  WITH done AS (
    DELETE FROM jobs_live d
     USING (SELECT u.id, u.token, u.result, 'running'::text AS running
              FROM unnest(p_ids, p_tokens, p_results) AS u(id, token, result) OFFSET 0) x
     WHERE d.id = x.id AND d.status = x.running AND d.lease_token = x.token
    RETURNING d.id, d.queue, d.task_type, d.payload, d.priority, d.run_at, d.attempts, d.max_attempts,
              d.lease_token, d.locked_by, d.lease_seconds, d.started_at, d.created_at, d.last_error,
              x.result, d.idempotency_key, d.request_hash, d.deadline_releases, d.created_by
  ), kept AS (
    INSERT INTO jobs (id, queue, task_type, payload, status, priority, run_at, attempts, max_attempts, lease_token, locked_at, locked_by, lease_seconds, started_at, finished_at, created_at, updated_at, last_error, result, idempotency_key, request_hash, deadline_releases, created_by)
    SELECT done.id, done.queue, done.task_type, done.payload, 'completed', done.priority, done.run_at,
           done.attempts, done.max_attempts, done.lease_token, NULL, done.locked_by, done.lease_seconds,
           done.started_at, now(), done.created_at, now(), done.last_error, done.result,
           done.idempotency_key, done.request_hash, done.deadline_releases, done.created_by
      FROM done
     WHERE done.queue <> ALL (v_deleting)
  ), counted AS (
    INSERT INTO job_counter_deltas (completed) SELECT count(*) FROM done HAVING count(*) > 0
  )
  SELECT array_agg(done.id) INTO v_ids FROM done;
  PERFORM set_config('dte.engine_counts', '', true);
  RETURN v_ids;
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_complete_batch(bigint[], bigint[], jsonb[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_complete_batch(bigint[], bigint[], jsonb[]) TO dte_consumer;

-- The previous release's completion (migration 0006's signature): a jsonb array of
-- {id, token, result}, unpacked into the arrays of jobs_complete_batch; the completed ids as one
-- comma-separated text, NULL when none.
CREATE OR REPLACE FUNCTION jobs_complete(p_completions jsonb)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
DECLARE
  v_ids bigint[];
  v_tokens bigint[];
  v_results jsonb[];
BEGIN
  SELECT array_agg(x.id), array_agg(x.token), array_agg(x.result) INTO v_ids, v_tokens, v_results
    FROM jsonb_to_recordset(p_completions) AS x(id bigint, token bigint, result jsonb);
  RETURN array_to_string(jobs_complete_batch(v_ids, v_tokens, v_results), ',');
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_complete(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_complete(jsonb) TO dte_consumer;

CREATE OR REPLACE FUNCTION jobs_fail(p_id bigint, p_token bigint, p_permanent boolean, p_backoff_base_seconds double precision, p_max_backoff_seconds double precision, p_error jsonb)
 RETURNS TABLE(status text, run_at timestamp with time zone, attempts integer)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  RETURN QUERY
  WITH decision AS (
    SELECT d.id, (p_permanent OR d.attempts >= d.max_attempts) AS final,
           least(p_max_backoff_seconds, p_backoff_base_seconds * power(2, greatest(d.attempts - 1, 0))) AS cap
      FROM jobs_live d WHERE d.id = p_id AND (d.status = 'running') IS TRUE AND d.lease_token = p_token
  )
  -- `jobs`, not jobs_live: a final failure moves the row to its day's partition (jobs_route keeps
  -- finished_at; the row triggers count it). The status test, three ways (0022): `IS TRUE` keeps
  -- the plan off jobs_running_idx (the planner cannot prove it implies that predicate, as in
  -- functions/engine/sql/fence.ts), and `<> 'completed' AND <> 'failed'` refutes the finished
  -- partitions' CHECKs, so only jobs_live is read, by its primary key (constraint exclusion;
  -- `IS TRUE` alone defeats it, a plain `= 'running'` walks the running index).
  UPDATE jobs j SET
    status = CASE WHEN x.final THEN 'failed' ELSE 'queued' END,
    run_at = CASE WHEN x.final THEN j.run_at
             ELSE now() + make_interval(secs => greatest(p_backoff_base_seconds, x.cap / 2 + random() * x.cap / 2)) END,
    finished_at = CASE WHEN x.final THEN now() END,
    last_error = p_error,
    locked_at = NULL,
    locked_by = CASE WHEN x.final THEN j.locked_by END,
    updated_at = now()
  FROM decision x
  WHERE j.id = x.id AND (j.status = 'running') IS TRUE AND j.status <> 'completed' AND j.status <> 'failed'
    AND j.lease_token = p_token
  RETURNING j.status, j.run_at, j.attempts;
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_fail(bigint, bigint, boolean, double precision, double precision, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_fail(bigint, bigint, boolean, double precision, double precision, jsonb) TO dte_consumer;

CREATE OR REPLACE FUNCTION jobs_renew(p_leases jsonb)
 RETURNS TABLE(id bigint)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  RETURN QUERY
  UPDATE jobs_live j SET locked_at = now(), updated_at = now()
    FROM jsonb_to_recordset(p_leases) AS x(id bigint, token bigint)
   WHERE j.id = ANY (ARRAY(SELECT (e ->> 'id')::bigint FROM jsonb_array_elements(p_leases) e))
     AND j.id = x.id AND (j.status = 'running') IS TRUE AND j.lease_token = x.token
  RETURNING j.id;
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_renew(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_renew(jsonb) TO dte_consumer;

CREATE OR REPLACE FUNCTION jobs_release(p_leases jsonb, p_reason text, p_max_deadline_releases integer)
 RETURNS TABLE(id bigint, status text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  RETURN QUERY
  WITH leases AS (
    SELECT x.id, x.token, coalesce(x.deadline, false) AS deadline
      FROM jsonb_to_recordset(p_leases) AS x(id bigint, token bigint, deadline boolean)
  )
  -- `jobs`, not jobs_live: a final release (out of deadline releases) moves the row; the status
  -- test as in jobs_fail.
  UPDATE jobs j SET
    status = CASE WHEN l.deadline AND j.deadline_releases >= p_max_deadline_releases THEN 'failed' ELSE 'queued' END,
    attempts = CASE WHEN l.deadline AND j.deadline_releases >= p_max_deadline_releases THEN j.attempts
               ELSE j.attempts - 1 END,
    finished_at = CASE WHEN l.deadline AND j.deadline_releases >= p_max_deadline_releases THEN now() END,
    deadline_releases = j.deadline_releases + CASE WHEN l.deadline THEN 1 ELSE 0 END,
    locked_at = NULL,
    locked_by = CASE WHEN l.deadline AND j.deadline_releases >= p_max_deadline_releases THEN j.locked_by END,
    updated_at = now(),
    last_error = CASE
      WHEN l.deadline AND j.deadline_releases >= p_max_deadline_releases THEN jsonb_build_object(
        'name', 'InvocationTimeExceeded',
        'message', format('exceeds the invocation time: stopped at the invocation deadline %s times '
                          '(released %s times, the most allowed)', j.deadline_releases + 1, j.deadline_releases),
        'attempt', j.attempts, 'deadlineReleases', j.deadline_releases + 1,
        'worker', j.locked_by, 'at', now())
      ELSE jsonb_build_object(
        'name', 'Released', 'message', p_reason, 'worker', j.locked_by, 'at', now(),
        'deadlineReleases', j.deadline_releases + CASE WHEN l.deadline THEN 1 ELSE 0 END)
      END
  FROM leases l
  WHERE j.id = ANY (ARRAY(SELECT (e ->> 'id')::bigint FROM jsonb_array_elements(p_leases) e))
    AND j.id = l.id AND (j.status = 'running') IS TRUE AND j.status <> 'completed' AND j.status <> 'failed'
    AND j.lease_token = l.token
  RETURNING j.id, j.status;
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_release(jsonb, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_release(jsonb, text, integer) TO dte_consumer;
