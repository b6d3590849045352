-- Per-queue retention (issue 21, item 5; the column is queues.retention, migration 0022):
-- 'keep' (the default) keeps a queue's finished jobs for the reaper's retention; 'delete' makes
-- jobs_complete_batch (consumer.sql) delete a completed job instead of keeping it (failed jobs
-- are kept). Either way a keyed job's job_keys row stays for the retention (jobs_prune_finished,
-- partitions.sql), so a replay of its key is still answered.
--
-- Source of truth for these functions (migrations/README.md, "Function files").

-- Sets a queue's retention and writes its 'set-retention' audit row in the same statement, as
-- queue_set_limits_audited does (schedules.sql). The queue's row is made when it has none (as a
-- pause makes it). The change applies to completions from the next statement on: a completion
-- reads the retention of the queues when it starts.
CREATE OR REPLACE FUNCTION queue_set_retention_audited(p_name text, p_retention text, p_actor text, p_reason text)
 RETURNS TABLE(name text, retention text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
DECLARE
  v_previous text;
BEGIN
  IF p_retention IS NULL OR p_retention NOT IN ('keep', 'delete') THEN
    RAISE EXCEPTION 'queue_set_retention_audited: retention must be keep or delete, not %', coalesce(p_retention, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  SELECT q.retention INTO v_previous FROM queues q WHERE q.name = p_name FOR UPDATE;
  RETURN QUERY
  INSERT INTO queues AS q (name, retention) VALUES (p_name, p_retention)
  ON CONFLICT ON CONSTRAINT queues_pkey DO UPDATE SET retention = excluded.retention, updated_at = now()
  RETURNING q.name, q.retention;
  INSERT INTO job_audit (job_id, queue, action, actor, reason, details)
  VALUES (NULL, p_name, 'set-retention', left(p_actor, 200), p_reason,
          jsonb_build_object('retention', p_retention, 'previous', coalesce(v_previous, 'keep')));
END
$function$;
REVOKE EXECUTE ON FUNCTION queue_set_retention_audited(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION queue_set_retention_audited(text, text, text, text) TO dte_api;

-- The jobs holding idempotency keys, for a replay (the api's enqueue) and the dashboard's search.
-- Read from job_keys (which the api role cannot read: 0022 grants it nothing), joined to `jobs`
-- by id: probes of each partition's id index. A key whose job is gone (deleted on completion by
-- a queue whose retention is 'delete'; a key whose job was deleted by hand is freed with it,
-- keys.sql) answers o_gone with its job id, status 'completed', its key's created_at, hash and
-- creator, and NULL for what only the row knew.
CREATE OR REPLACE FUNCTION jobs_find_by_keys(p_keys text[])
 RETURNS TABLE(id bigint, queue text, task_type text, payload jsonb, status text, priority integer,
               run_at timestamp with time zone, attempts integer, max_attempts integer, lease_token bigint,
               locked_at timestamp with time zone, locked_by text, lease_seconds integer,
               started_at timestamp with time zone, finished_at timestamp with time zone,
               created_at timestamp with time zone, updated_at timestamp with time zone, last_error jsonb,
               result jsonb, idempotency_key text, request_hash text, created_by text, o_gone boolean)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  RETURN QUERY
  SELECT k.job_id, j.queue, j.task_type, j.payload, coalesce(j.status, 'completed'), j.priority, j.run_at,
         j.attempts, j.max_attempts, j.lease_token, j.locked_at, j.locked_by, j.lease_seconds,
         j.started_at, j.finished_at, coalesce(j.created_at, k.created_at), j.updated_at, j.last_error,
         j.result, k.idempotency_key, k.request_hash, k.created_by, j.id IS NULL
    FROM job_keys k
    LEFT JOIN jobs j ON j.id = k.job_id
   WHERE k.idempotency_key = ANY (p_keys);
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_find_by_keys(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_find_by_keys(text[]) TO dte_api;
