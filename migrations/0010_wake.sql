-- Wake on enqueue (issue 17): who is live is decided from the database, with no session state
-- (no LISTEN, no session or advisory locks), so the fleet stays pooler-safe (RDS Proxy and
-- PgBouncer in transaction mode).
--
--   consumer_presence  one row per consumer invocation that is claiming: it touches its row
--                      (seen_until = now() + p_live_ms) at most every quarter of that while it
--                      claims, and deletes it before its last claim when it leaves. A crashed
--                      invocation's row simply expires.
--   queue_wakes        one row per queue the api has woken a consumer for: woken_at is the
--                      debounce. A burst of enqueues finds woken_at recent and invokes nothing.
--
-- The exit handshake needs no lock: the api commits its jobs, then runs queues_wake in a new
-- statement; a consumer deletes its presence row (consumer_leave, committed), then claims once
-- more. If the api's check saw the row, the delete committed after the check's snapshot, so
-- after the jobs: the consumer's last claim, later still, sees them. If it did not see the row,
-- the api invokes. Either way no job waits for the schedule.
--
-- Expand only: the previous release's code never reads or writes these tables.

CREATE TABLE consumer_presence (
  worker_id  text PRIMARY KEY CHECK (length(worker_id) BETWEEN 1 AND 256),
  -- The queues the invocation claims from; NULL: every queue.
  queues     text[],
  seen_until timestamptz NOT NULL
);

CREATE TABLE queue_wakes (
  queue    text PRIMARY KEY CHECK (length(queue) BETWEEN 1 AND 128),
  woken_at timestamptz NOT NULL,
  wakes    bigint      NOT NULL DEFAULT 1
);

-- The consumer is claiming: live until now() + p_live_ms.
CREATE FUNCTION consumer_touch(p_worker text, p_queues text[], p_live_ms integer) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict error
BEGIN
  INSERT INTO consumer_presence (worker_id, queues, seen_until)
  VALUES (p_worker, p_queues, now() + make_interval(secs => p_live_ms / 1000.0))
  ON CONFLICT (worker_id) DO UPDATE SET queues = excluded.queues, seen_until = excluded.seen_until;
END
$$;

-- The consumer leaves (before its last claim). Rows of invocations that crashed an hour ago go too.
CREATE FUNCTION consumer_leave(p_worker text) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict error
BEGIN
  DELETE FROM consumer_presence c
   WHERE c.worker_id = p_worker OR c.seen_until < now() - interval '1 hour';
END
$$;

-- The api enqueued into `p_queues`: returns the queues that have no live consumer and were not
-- woken in the last `p_debounce_ms`, marking them woken now. The caller invokes one consumer
-- when any comes back. Concurrent callers serialise on the queue_wakes row: the second one
-- re-checks woken_at against the first one's update and gets nothing.
CREATE FUNCTION queues_wake(p_queues text[], p_debounce_ms integer) RETURNS SETOF text
LANGUAGE plpgsql AS $$
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
$$;

DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY[
    'consumer_touch(text, text[], integer)',
    'consumer_leave(text)',
    'queues_wake(text[], integer)'
  ] LOOP
    EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp',
                   f::regprocedure, current_schema());
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END
$$;

GRANT EXECUTE ON FUNCTION consumer_touch(text, text[], integer) TO dte_consumer;
GRANT EXECUTE ON FUNCTION consumer_leave(text) TO dte_consumer;
GRANT EXECUTE ON FUNCTION queues_wake(text[], integer) TO dte_api;
GRANT SELECT ON consumer_presence, queue_wakes TO dte_api, dte_consumer, dte_reaper;
