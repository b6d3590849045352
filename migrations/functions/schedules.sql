-- Schedules (the api writes them, the reaper materialises occurrences) and per-queue limits.
--
-- Source of truth for these functions (migrations/README.md, "Function files").

CREATE OR REPLACE FUNCTION queue_set_limits(p_name text, p_set_max_running boolean, p_max_running integer, p_set_rate boolean, p_rate double precision, p_burst integer)
 RETURNS TABLE(name text, max_running integer, rate_per_second double precision, rate_burst integer)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  INSERT INTO queues AS q (name) VALUES (p_name) ON CONFLICT ON CONSTRAINT queues_pkey DO NOTHING;
  RETURN QUERY
  UPDATE queues q SET
    max_running = CASE WHEN p_set_max_running THEN p_max_running ELSE q.max_running END,
    rate_per_second = CASE WHEN p_set_rate THEN p_rate ELSE q.rate_per_second END,
    rate_burst = CASE WHEN NOT p_set_rate THEN q.rate_burst
                      WHEN p_rate IS NULL THEN NULL
                      ELSE coalesce(p_burst, greatest(1, ceil(p_rate)::integer)) END,
    tokens = CASE WHEN NOT p_set_rate THEN q.tokens
                  WHEN p_rate IS NULL THEN NULL
                  ELSE coalesce(p_burst, greatest(1, ceil(p_rate)::integer)) END,
    tokens_at = CASE WHEN p_set_rate THEN clock_timestamp() ELSE q.tokens_at END,
    updated_at = now()
  WHERE q.name = p_name
  RETURNING q.name, q.max_running, q.rate_per_second, q.rate_burst;
END
$function$;
REVOKE EXECUTE ON FUNCTION queue_set_limits(text, boolean, integer, boolean, double precision, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION queue_set_limits(text, boolean, integer, boolean, double precision, integer) TO dte_api;

CREATE OR REPLACE FUNCTION schedule_put(p_name text, p_cron text, p_timezone text, p_type text, p_payload jsonb, p_queue text, p_priority integer, p_max_attempts integer, p_enabled boolean, p_catch_up text)
 RETURNS SETOF schedules
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  RETURN QUERY
  INSERT INTO schedules AS s (name, cron, timezone, task_type, payload, queue, priority, max_attempts,
                              enabled, catch_up, source)
  VALUES (p_name, p_cron, p_timezone, p_type, p_payload, p_queue, p_priority, p_max_attempts,
          p_enabled, p_catch_up, 'api')
  ON CONFLICT ON CONSTRAINT schedules_pkey DO UPDATE SET
    cron = excluded.cron, timezone = excluded.timezone, task_type = excluded.task_type,
    payload = excluded.payload, queue = excluded.queue, priority = excluded.priority,
    max_attempts = excluded.max_attempts, enabled = excluded.enabled, catch_up = excluded.catch_up,
    next_at = CASE WHEN s.cron = excluded.cron AND s.timezone = excluded.timezone THEN s.next_at END,
    updated_at = now()
  WHERE s.source = 'api'
  RETURNING s.*;
END
$function$;
REVOKE EXECUTE ON FUNCTION schedule_put(text, text, text, text, jsonb, text, integer, integer, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION schedule_put(text, text, text, text, jsonb, text, integer, integer, boolean, text) TO dte_api;

CREATE OR REPLACE FUNCTION schedule_delete(p_name text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  DELETE FROM schedules s WHERE s.name = p_name AND s.source = 'api';
  RETURN FOUND;
END
$function$;
REVOKE EXECUTE ON FUNCTION schedule_delete(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION schedule_delete(text) TO dte_api;

CREATE OR REPLACE FUNCTION schedule_set_enabled(p_name text, p_enabled boolean)
 RETURNS SETOF schedules
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  RETURN QUERY
  UPDATE schedules s SET enabled = p_enabled,
         next_at = CASE WHEN p_enabled AND NOT s.enabled AND s.catch_up = 'skip' THEN NULL ELSE s.next_at END,
         updated_at = now()
   WHERE s.name = p_name
  RETURNING s.*;
END
$function$;
REVOKE EXECUTE ON FUNCTION schedule_set_enabled(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION schedule_set_enabled(text, boolean) TO dte_api;

CREATE OR REPLACE FUNCTION schedule_advance(p_name text, p_expected timestamp with time zone, p_occurrences timestamp with time zone[], p_keys text[], p_next_at timestamp with time zone)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
DECLARE
  v_s schedules;
  v_inserted integer;
BEGIN
  IF cardinality(p_occurrences) <> cardinality(p_keys) THEN
    RAISE EXCEPTION 'schedule_advance: one key per occurrence' USING ERRCODE = '22023';
  END IF;
  SELECT * INTO v_s FROM schedules s WHERE s.name = p_name FOR UPDATE;
  IF NOT FOUND OR NOT v_s.enabled OR v_s.next_at IS DISTINCT FROM p_expected THEN
    RETURN -1;
  END IF;
  -- Counted here (`submitted`); dte.engine_counts, set around it, keeps the row triggers out (issue 21).
  PERFORM set_config('dte.engine_counts', 'on', true);
  -- Each occurrence's key first (job_keys, 0022), then the jobs of the keys that were new.
  WITH keys AS (
    INSERT INTO job_keys AS k (idempotency_key, job_id)
    SELECT o.key, nextval('job_ids') FROM unnest(p_keys) AS o(key) ORDER BY o.key
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING k.idempotency_key, k.job_id
  ), ins AS (
    INSERT INTO jobs_live (id, queue, task_type, payload, priority, run_at, max_attempts, idempotency_key)
    SELECT k.job_id, v_s.queue, v_s.task_type, v_s.payload, v_s.priority, o.at, coalesce(v_s.max_attempts, 5), o.key
      FROM keys k JOIN unnest(p_occurrences, p_keys) AS o(at, key) ON o.key = k.idempotency_key
    RETURNING jobs_live.id
  ), counted AS (
    INSERT INTO job_counter_deltas (submitted) SELECT count(*) FROM ins HAVING count(*) > 0
  )
  SELECT count(*) INTO v_inserted FROM ins;
  PERFORM set_config('dte.engine_counts', '', true);
  UPDATE schedules s SET next_at = p_next_at,
         last_enqueued_at = CASE WHEN cardinality(p_occurrences) > 0 THEN now() ELSE s.last_enqueued_at END,
         last_run_at = coalesce((SELECT max(o) FROM unnest(p_occurrences) o), s.last_run_at),
         updated_at = now()
   WHERE s.name = p_name;
  RETURN v_inserted;
END
$function$;
REVOKE EXECUTE ON FUNCTION schedule_advance(text, timestamp with time zone, timestamp with time zone[], text[], timestamp with time zone) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION schedule_advance(text, timestamp with time zone, timestamp with time zone[], text[], timestamp with time zone) TO dte_reaper;

-- The operator actions on schedules and limits (functions/engine/operator.ts: the API, taskctl,
-- the dashboard), each with its job_audit row written in the same statement, as the owner (the
-- api has no INSERT on job_audit; a failing audit insert rolls the change back). The actor is cut
-- to the 200 characters job_audit keeps, as jobs_cancel_audited does.

CREATE OR REPLACE FUNCTION schedule_put_audited(p_name text, p_cron text, p_timezone text, p_type text, p_payload jsonb, p_queue text, p_priority integer, p_max_attempts integer, p_enabled boolean, p_catch_up text, p_actor text, p_reason text)
 RETURNS SETOF schedules
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
DECLARE
  v_existed boolean;
  v_row schedules;
BEGIN
  v_existed := EXISTS (SELECT 1 FROM schedules s WHERE s.name = p_name);
  SELECT p.* INTO v_row
    FROM schedule_put(p_name, p_cron, p_timezone, p_type, p_payload, p_queue, p_priority, p_max_attempts,
                      p_enabled, p_catch_up) p;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  INSERT INTO job_audit (job_id, queue, action, actor, reason, details)
  VALUES (NULL, v_row.queue, CASE WHEN v_existed THEN 'schedule-replace' ELSE 'schedule-add' END,
          left(p_actor, 200), p_reason,
          jsonb_build_object('schedule', v_row.name, 'cron', v_row.cron, 'timezone', v_row.timezone,
                             'type', v_row.task_type, 'enabled', v_row.enabled, 'catchUp', v_row.catch_up));
  RETURN NEXT v_row;
END
$function$;
REVOKE EXECUTE ON FUNCTION schedule_put_audited(text, text, text, text, jsonb, text, integer, integer, boolean, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION schedule_put_audited(text, text, text, text, jsonb, text, integer, integer, boolean, text, text, text) TO dte_api;

CREATE OR REPLACE FUNCTION schedule_delete_audited(p_name text, p_actor text, p_reason text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
DECLARE
  v_row schedules;
BEGIN
  SELECT s.* INTO v_row FROM schedules s WHERE s.name = p_name AND s.source = 'api' FOR UPDATE;
  IF NOT FOUND OR NOT schedule_delete(p_name) THEN
    RETURN false;
  END IF;
  INSERT INTO job_audit (job_id, queue, action, actor, reason, details)
  VALUES (NULL, v_row.queue, 'schedule-remove', left(p_actor, 200), p_reason,
          jsonb_build_object('schedule', v_row.name, 'cron', v_row.cron, 'timezone', v_row.timezone,
                             'type', v_row.task_type));
  RETURN true;
END
$function$;
REVOKE EXECUTE ON FUNCTION schedule_delete_audited(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION schedule_delete_audited(text, text, text) TO dte_api;

CREATE OR REPLACE FUNCTION schedule_set_enabled_audited(p_name text, p_enabled boolean, p_actor text, p_reason text)
 RETURNS SETOF schedules
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
DECLARE
  v_row schedules;
BEGIN
  SELECT e.* INTO v_row FROM schedule_set_enabled(p_name, p_enabled) e;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  INSERT INTO job_audit (job_id, queue, action, actor, reason, details)
  VALUES (NULL, v_row.queue, CASE WHEN p_enabled THEN 'schedule-resume' ELSE 'schedule-pause' END,
          left(p_actor, 200), p_reason, jsonb_build_object('schedule', v_row.name));
  RETURN NEXT v_row;
END
$function$;
REVOKE EXECUTE ON FUNCTION schedule_set_enabled_audited(text, boolean, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION schedule_set_enabled_audited(text, boolean, text, text) TO dte_api;

CREATE OR REPLACE FUNCTION queue_set_limits_audited(p_name text, p_set_max_running boolean, p_max_running integer, p_set_rate boolean, p_rate double precision, p_burst integer, p_change jsonb, p_actor text, p_reason text)
 RETURNS TABLE(name text, max_running integer, rate_per_second double precision, rate_burst integer)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  RETURN QUERY
  SELECT l.name, l.max_running, l.rate_per_second, l.rate_burst
    FROM queue_set_limits(p_name, p_set_max_running, p_max_running, p_set_rate, p_rate, p_burst) l;
  INSERT INTO job_audit (job_id, queue, action, actor, reason, details)
  VALUES (NULL, p_name, 'set-limit', left(p_actor, 200), p_reason, coalesce(p_change, '{}'::jsonb));
END
$function$;
REVOKE EXECUTE ON FUNCTION queue_set_limits_audited(text, boolean, integer, boolean, double precision, integer, jsonb, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION queue_set_limits_audited(text, boolean, integer, boolean, double precision, integer, jsonb, text, text) TO dte_api;
