-- The api's cancel of one job.
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
