-- The cancel of one job: jobs_cancel (0009), and jobs_cancel_audited (0012), which the API calls:
-- the same cancel with its job_audit row written in the same statement, as the owner (dte_api has
-- no INSERT on job_audit; a failing audit insert rolls the cancel back). The actor is cut to the
-- 200 characters job_audit keeps; last_error keeps it whole.
--
-- Source of truth for these functions (migrations/README.md, "Function files").

CREATE OR REPLACE FUNCTION jobs_cancel(p_id bigint, p_reason text, p_actor text, p_creator_only boolean, p_caller text)
 RETURNS SETOF jobs
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  -- DELETE from jobs_live + INSERT through `jobs` (into the day's partition) rather than an
  -- UPDATE that moves the row: a claim locking a queued row that was moved fails with SQLSTATE
  -- 40001, one locking a deleted row skips it (0022). Counted here (dte.engine_counts).
  PERFORM set_config('dte.engine_counts', 'on', true);
  RETURN QUERY
  WITH gone AS (
    DELETE FROM jobs_live j
     WHERE j.id = p_id AND (NOT p_creator_only OR j.created_by = p_caller)
    RETURNING j.*
  ), moved AS (
    INSERT INTO jobs (id, queue, task_type, payload, status, priority, run_at, attempts, max_attempts, lease_token, locked_at, locked_by, lease_seconds, started_at, finished_at, created_at, updated_at, last_error, result, idempotency_key, request_hash, deadline_releases, created_by)
    SELECT g.id, g.queue, g.task_type, g.payload, 'failed', g.priority, g.run_at, g.attempts, g.max_attempts,
           g.lease_token, NULL, g.locked_by, g.lease_seconds, g.started_at, now(), g.created_at, now(),
           jsonb_build_object('name', 'Cancelled', 'message', p_reason, 'actor', p_actor,
                              'at', now(), 'previousStatus', g.status, 'attempt', g.attempts),
           g.result, g.idempotency_key, g.request_hash, g.deadline_releases, g.created_by
      FROM gone g
    RETURNING jobs.*
  ), counted AS (
    INSERT INTO job_counter_deltas (failed) SELECT count(*) FROM moved HAVING count(*) > 0
  )
  SELECT m.* FROM moved m;
  PERFORM set_config('dte.engine_counts', '', true);
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_cancel(bigint, text, text, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_cancel(bigint, text, text, boolean, text) TO dte_api;

CREATE OR REPLACE FUNCTION jobs_cancel_audited(p_id bigint, p_reason text, p_actor text, p_creator_only boolean, p_caller text)
 RETURNS SETOF jobs
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
DECLARE
  v_row jobs;
BEGIN
  SELECT c.* INTO v_row FROM jobs_cancel(p_id, p_reason, p_actor, p_creator_only, p_caller) c;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  INSERT INTO job_audit (job_id, queue, action, actor, reason, details)
  VALUES (v_row.id, NULL, 'cancel', left(p_actor, 200), p_reason,
          jsonb_build_object('previousStatus', coalesce(v_row.last_error->>'previousStatus', 'unknown'),
                             'worker', v_row.locked_by));
  RETURN NEXT v_row;
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_cancel_audited(bigint, text, text, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_cancel_audited(bigint, text, text, boolean, text) TO dte_api;
