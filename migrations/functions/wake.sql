-- Wake on enqueue: consumer presence (touch, leave) and the api's debounced wake of queues.
--
-- Source of truth for these functions (migrations/README.md, "Function files").

CREATE OR REPLACE FUNCTION consumer_touch(p_worker text, p_queues text[], p_live_ms integer)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  INSERT INTO consumer_presence (worker_id, queues, seen_until)
  VALUES (p_worker, p_queues, now() + make_interval(secs => p_live_ms / 1000.0))
  ON CONFLICT (worker_id) DO UPDATE SET queues = excluded.queues, seen_until = excluded.seen_until;
END
$function$;
REVOKE EXECUTE ON FUNCTION consumer_touch(text, text[], integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consumer_touch(text, text[], integer) TO dte_consumer;

CREATE OR REPLACE FUNCTION consumer_leave(p_worker text)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  DELETE FROM consumer_presence c
   WHERE c.worker_id = p_worker OR c.seen_until < now() - interval '1 hour';
END
$function$;
REVOKE EXECUTE ON FUNCTION consumer_leave(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consumer_leave(text) TO dte_consumer;

CREATE OR REPLACE FUNCTION queues_wake(p_queues text[], p_debounce_ms integer)
 RETURNS SETOF text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
BEGIN
  RETURN QUERY
  WITH wanted AS (
    SELECT DISTINCT w.name FROM unnest(p_queues) AS w(name)
     WHERE w.name IS NOT NULL
       AND NOT EXISTS (
         SELECT 1 FROM consumer_presence c
          WHERE c.seen_until > now() AND (c.queues IS NULL OR w.name = ANY (c.queues)))
  )
  INSERT INTO queue_wakes AS k (queue, woken_at)
  SELECT wanted.name, now() FROM wanted ORDER BY wanted.name
  ON CONFLICT (queue) DO UPDATE SET woken_at = now(), wakes = k.wakes + 1
   WHERE k.woken_at < now() - make_interval(secs => p_debounce_ms / 1000.0)
  RETURNING k.queue;
END
$function$;
REVOKE EXECUTE ON FUNCTION queues_wake(text[], integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION queues_wake(text[], integer) TO dte_api;
