-- Every cancel is audited, the API's too (issue 19). jobs_cancel_audited does what jobs_cancel
-- (0009) does and writes the cancel's job_audit row in the same statement, as the function's
-- owner: dte_api has had no INSERT on job_audit since 0009, and a failing audit insert must roll
-- the cancel back. The audit row is the one taskctl and the dashboard wrote themselves before:
-- action 'cancel', the actor, the reason, details {previousStatus, worker}. The actor is cut to
-- the 200 characters job_audit keeps (an IAM ARN may be longer); last_error keeps it whole.
--
-- Expand/contract: a new function; jobs_cancel is unchanged, so the previous release's code
-- (which calls it and, in taskctl and the dashboard, writes its own audit row) behaves as before.

CREATE OR REPLACE FUNCTION jobs_cancel_audited(
  p_id bigint,
  p_reason text,
  p_actor text,
  p_creator_only boolean,
  p_caller text
)
RETURNS SETOF jobs
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
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
$$;

DO $$
BEGIN
  EXECUTE format('ALTER FUNCTION jobs_cancel_audited(bigint, text, text, boolean, text) SECURITY DEFINER SET search_path = %I, pg_temp',
                 current_schema());
END
$$;

REVOKE EXECUTE ON FUNCTION jobs_cancel_audited(bigint, text, text, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_cancel_audited(bigint, text, text, boolean, text) TO dte_api;
