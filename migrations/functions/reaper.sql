-- The reaper: requeue (or fail) jobs whose leases expired (pruning: functions/partitions.sql).
--
-- Source of truth for these functions (migrations/README.md, "Function files").

CREATE OR REPLACE FUNCTION jobs_requeue_expired(p_limit integer, OUT o_requeued bigint, OUT o_failed bigint)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  PERFORM set_config('dte.engine_counts', 'on', true);
  WITH expired AS (
    -- Unordered: jobs_running_idx (0022) is in queue order; a batch takes the first expired
    -- leases it meets and the reaper loops until none is left, so every one goes this run.
    SELECT e.id FROM jobs_live e
     WHERE e.status = 'running' AND e.locked_at + make_interval(secs => e.lease_seconds) < now()
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
    -- `jobs`: a lease out of attempts moves its row to a finished partition. The status test
    -- as in jobs_fail (consumer.sql): only jobs_live is read, by its primary key.
    WHERE j.id = ANY (ARRAY(SELECT expired.id FROM expired))
      AND (j.status = 'running') IS TRUE AND j.status <> 'completed' AND j.status <> 'failed'
    RETURNING j.status
  ), counted AS (
    -- recovered, and the leases out of attempts that failed (dte.engine_counts, set around the
    -- statement, keeps the row counting triggers out: issue 21)
    INSERT INTO job_counter_deltas (recovered, failed)
    SELECT count(*), count(*) FILTER (WHERE taken.status = 'failed') FROM taken HAVING count(*) > 0
  )
  SELECT count(*) FILTER (WHERE taken.status = 'queued'), count(*) FILTER (WHERE taken.status = 'failed')
    INTO o_requeued, o_failed
    FROM taken;
  PERFORM set_config('dte.engine_counts', '', true);
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_requeue_expired(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_requeue_expired(integer) TO dte_reaper;
