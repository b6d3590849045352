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
  RETURN QUERY
  UPDATE jobs j
     SET status = 'failed', finished_at = now(), updated_at = now(), locked_at = NULL,
         last_error = jsonb_build_object('name', 'Cancelled', 'message', p_reason, 'actor', p_actor,
                                         'at', now(), 'previousStatus', j.status, 'attempt', j.attempts)
   WHERE j.id = p_id AND j.status IN ('queued', 'running')
     AND (NOT p_creator_only OR j.created_by = p_caller)
  RETURNING j.*;
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
