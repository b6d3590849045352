-- Recurring schedules, per-queue concurrency limits and per-queue rate limits (issue 18).
--
-- 1. `schedules`: one row per schedule (cron + IANA time zone, a task type, payload and queue).
--    `next_at` is the cursor: the earliest occurrence not yet materialised. The materialiser
--    (functions/engine/schedules.ts, run by every reaper run) computes occurrences in
--    TypeScript (croner) and hands them to schedule_advance, which in one statement locks the
--    row, checks the cursor is still the one it read (compare-and-set), inserts one job per
--    occurrence under the idempotency key `schedule:<name>:<occurrence ISO time>` and moves the
--    cursor. Two materialisers that race: the second waits on the row lock, finds the cursor
--    moved and does nothing; even a cursor moved back (a schedule removed and added again)
--    cannot enqueue an occurrence twice, the key is unique.
--
-- 2. Queue limits live in the queue's control row: `max_running` (never more than N running
--    jobs of the queue across the fleet; claimed-but-not-started jobs are running, their leases
--    are held) and `rate_per_second` with `rate_burst` (a token bucket: `tokens` at
--    `tokens_at`). jobs_claim locks the control row (FOR UPDATE) only for queues that have a
--    limit, counts their running jobs under that lock, claims at most
--    min(N - running, floor(tokens)) and consumes the tokens in the same transaction. A claim
--    that touches no limited queue runs the statements of 0008 unchanged: `queues_limited` is
--    false and the first IF is the only extra step (an index-less read of the small queues table,
--    which 0008 already reads for the paused check).
--
-- 3. Roles: dte_reaper runs schedule_advance; dte_api reads schedules and writes them and the
--    limits only through schedule_put, schedule_delete, schedule_set_enabled and
--    queue_set_limits (SECURITY DEFINER, fixed search_path, as 0009).
--
-- Expand/contract: new table, new nullable columns, a new partial index on running jobs
-- (built in this transaction: it blocks writes to jobs while it scans; only running rows are
-- indexed), jobs_claim keeps its signature. The previous release's code never sets a limit or
-- a schedule, so it behaves as before.

CREATE TABLE schedules (
  name             text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
  cron             text NOT NULL CHECK (length(cron) BETWEEN 1 AND 256),
  timezone         text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 64),
  task_type        text NOT NULL CHECK (length(task_type) BETWEEN 1 AND 200),
  payload          jsonb NOT NULL DEFAULT '{}',
  queue            text NOT NULL DEFAULT 'default' CHECK (length(queue) BETWEEN 1 AND 128),
  priority         integer NOT NULL DEFAULT 0,
  max_attempts     integer CHECK (max_attempts IS NULL OR max_attempts BETWEEN 1 AND 1000),
  enabled          boolean NOT NULL DEFAULT true,
  catch_up         text NOT NULL DEFAULT 'latest' CHECK (catch_up IN ('skip', 'latest', 'all')),
  source           text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'code')),
  next_at          timestamptz,
  last_enqueued_at timestamptz,
  last_run_at      timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE queues ADD COLUMN max_running integer CHECK (max_running IS NULL OR max_running > 0);
ALTER TABLE queues ADD COLUMN rate_per_second float8
  CHECK (rate_per_second IS NULL OR (rate_per_second > 0 AND rate_per_second <= 1000000));
ALTER TABLE queues ADD COLUMN rate_burst integer CHECK (rate_burst IS NULL OR rate_burst > 0);
ALTER TABLE queues ADD COLUMN tokens float8;
ALTER TABLE queues ADD COLUMN tokens_at timestamptz;

-- Running jobs of one queue, counted under the control row's lock by a limited claim.
CREATE INDEX jobs_running_queue_idx ON jobs (queue) WHERE status = 'running';

-- The claim of 0008 with limits. Limited queues first (each under its control row's lock, in
-- name order so two claimers never wait on each other crosswise), then the unlimited ones
-- through 0008's level-by-level statements, for what is left of `p_limit`. Limited queues are
-- read in claim order (priority DESC, run_at, id) through jobs_claim_queue_idx.
CREATE OR REPLACE FUNCTION jobs_claim(
  p_worker text,
  p_limit integer,
  p_lease_seconds integer,
  p_queues text[],
  p_advisory boolean,
  p_completions jsonb,
  OUT o_claimed jsonb,
  OUT o_completed text
)
LANGUAGE plpgsql SECURITY DEFINER SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict error
DECLARE
  v_queues text[] := p_queues;
  v_ids bigint[] := '{}';
  v_got bigint[];
  v_prio integer;
  v_need integer;
  v_window integer;
  v_limited text[];
  v_ctl record;
  v_at timestamptz := now();
  v_running integer;
  v_tokens float8;
  v_allow integer;
BEGIN
  IF jsonb_array_length(p_completions) > 0 THEN
    o_completed := jobs_complete(p_completions);
  END IF;

  -- Limited queues (only when some queue has a limit): each under its control row's lock.
  IF EXISTS (SELECT 1 FROM queues q WHERE q.max_running IS NOT NULL OR q.rate_per_second IS NOT NULL) THEN
    SELECT coalesce(array_agg(q.name ORDER BY q.name), '{}') INTO v_limited FROM queues q
     WHERE (q.max_running IS NOT NULL OR q.rate_per_second IS NOT NULL)
       AND (v_queues IS NULL OR q.name = ANY (v_queues));
    FOR i IN 1 .. cardinality(v_limited) LOOP
      EXIT WHEN cardinality(v_ids) >= p_limit;
      SELECT q.paused, q.max_running, q.rate_per_second, q.rate_burst, q.tokens, q.tokens_at
        INTO v_ctl FROM queues q WHERE q.name = v_limited[i] FOR UPDATE;
      CONTINUE WHEN v_ctl.paused OR (v_ctl.max_running IS NULL AND v_ctl.rate_per_second IS NULL);
      -- After the lock: the previous holder's claims are committed and visible to this
      -- statement's snapshot, and clock_timestamp() is later than the tokens_at it wrote.
      v_at := clock_timestamp();
      v_allow := p_limit - cardinality(v_ids);
      IF v_ctl.max_running IS NOT NULL THEN
        SELECT count(*) INTO v_running FROM jobs j WHERE j.queue = v_limited[i] AND j.status = 'running';
        v_allow := least(v_allow, v_ctl.max_running - v_running);
      END IF;
      IF v_ctl.rate_per_second IS NOT NULL THEN
        v_tokens := least(v_ctl.rate_burst::float8,
                          coalesce(v_ctl.tokens, v_ctl.rate_burst::float8)
                          + v_ctl.rate_per_second
                            * greatest(0, extract(epoch FROM v_at - coalesce(v_ctl.tokens_at, v_at))));
        v_allow := least(v_allow, floor(v_tokens)::integer);
      END IF;
      CONTINUE WHEN v_allow <= 0 AND v_ctl.rate_per_second IS NULL;
      IF v_allow > 0 THEN
        v_got := ARRAY(
          SELECT j.id FROM jobs j
           WHERE j.queue = v_limited[i] AND j.status = 'queued' AND j.run_at <= now()
           ORDER BY j.priority DESC, j.run_at, j.id
           LIMIT v_allow
           FOR UPDATE SKIP LOCKED);
      ELSE
        v_got := '{}';
      END IF;
      v_ids := v_ids || v_got;
      IF v_ctl.rate_per_second IS NOT NULL THEN
        UPDATE queues q SET tokens = v_tokens - cardinality(v_got), tokens_at = v_at
         WHERE q.name = v_limited[i];
      END IF;
    END LOOP;
    -- The unlimited rest: named queues minus the limited ones, or (all queues) the queues with
    -- queued jobs, listed as 0008 does for a paused queue, minus the limited and paused ones.
    IF cardinality(v_limited) > 0 OR v_queues IS NULL THEN
      IF v_queues IS NULL THEN
        WITH RECURSIVE qs(name) AS (
          (SELECT j.queue FROM jobs j WHERE j.status = 'queued' ORDER BY j.queue LIMIT 1)
          UNION ALL
          SELECT (SELECT j.queue FROM jobs j WHERE j.status = 'queued' AND j.queue > qs.name
                   ORDER BY j.queue LIMIT 1)
            FROM qs WHERE qs.name IS NOT NULL
        )
        SELECT coalesce(array_agg(qs.name), '{}') INTO v_queues FROM qs
         WHERE qs.name IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = qs.name
                            AND (q.paused OR q.max_running IS NOT NULL OR q.rate_per_second IS NOT NULL));
      ELSE
        v_queues := ARRAY(SELECT qn.name FROM unnest(v_queues) AS qn(name) WHERE qn.name <> ALL (v_limited));
      END IF;
    END IF;
    IF cardinality(v_ids) >= p_limit OR cardinality(v_queues) = 0 THEN
      v_queues := '{}';
    END IF;
  END IF;

  -- A queue is paused: list the queues with queued jobs, jumping from one queue to the next
  -- through jobs_claim_queue_idx, and claim from the unpaused ones by name.
  IF v_queues IS NULL AND EXISTS (SELECT 1 FROM queues q WHERE q.paused) THEN
    WITH RECURSIVE qs(name) AS (
      (SELECT j.queue FROM jobs j WHERE j.status = 'queued' ORDER BY j.queue LIMIT 1)
      UNION ALL
      SELECT (SELECT j.queue FROM jobs j WHERE j.status = 'queued' AND j.queue > qs.name
               ORDER BY j.queue LIMIT 1)
        FROM qs WHERE qs.name IS NOT NULL
    )
    SELECT coalesce(array_agg(qs.name), '{}') INTO v_queues FROM qs
     WHERE qs.name IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = qs.name AND q.paused);
  END IF;

  IF v_queues IS NULL THEN
    SELECT j.priority INTO v_prio FROM jobs j WHERE j.status = 'queued' ORDER BY j.priority DESC LIMIT 1;
  ELSIF cardinality(v_queues) > 0 THEN
    SELECT max(h.priority) INTO v_prio FROM unnest(v_queues) AS qn(name)
     CROSS JOIN LATERAL (
       SELECT j.priority FROM jobs j WHERE j.queue = qn.name AND j.status = 'queued'
        ORDER BY j.priority DESC LIMIT 1
     ) h
     WHERE NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = qn.name AND q.paused);
  END IF;

  WHILE v_prio IS NOT NULL LOOP
    v_need := p_limit - cardinality(v_ids);
    IF NOT p_advisory AND v_queues IS NULL THEN
      v_ids := v_ids || ARRAY(
        SELECT j.id FROM jobs j
         WHERE j.status = 'queued' AND j.priority = v_prio AND j.run_at <= now()
         ORDER BY j.run_at, j.id
         LIMIT v_need
         FOR UPDATE SKIP LOCKED);
    ELSIF NOT p_advisory THEN
      v_ids := v_ids || ARRAY(
        SELECT c.id FROM unnest(v_queues) AS qn(name)
         CROSS JOIN LATERAL (
           SELECT j.id, j.run_at FROM jobs j
            WHERE j.queue = qn.name AND j.status = 'queued' AND j.priority = v_prio AND j.run_at <= now()
            ORDER BY j.run_at, j.id
            LIMIT v_need
              FOR UPDATE SKIP LOCKED
         ) c
         WHERE NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = qn.name AND q.paused)
         ORDER BY c.run_at, c.id
         LIMIT v_need);
    ELSE
      v_window := v_need * 8;
      LOOP
        IF v_queues IS NULL THEN
          v_got := ARRAY(
            WITH candidates AS MATERIALIZED (
              SELECT j.id FROM jobs j
               WHERE j.status = 'queued' AND j.priority = v_prio AND j.run_at <= now()
               ORDER BY j.run_at, j.id
               LIMIT v_window
            )
            SELECT x.id FROM candidates cand
             CROSS JOIN LATERAL (
               SELECT j.id FROM jobs j
                WHERE j.id = cand.id AND j.status = 'queued' AND j.run_at <= now()
                  FOR UPDATE SKIP LOCKED
             ) x
             WHERE pg_try_advisory_xact_lock(2052980737, (cand.id % 2147483647)::int)
             LIMIT v_need);
        ELSE
          v_got := ARRAY(
            WITH candidates AS MATERIALIZED (
              SELECT c.id FROM unnest(v_queues) AS qn(name)
               CROSS JOIN LATERAL (
                 SELECT j.id, j.run_at FROM jobs j
                  WHERE j.queue = qn.name AND j.status = 'queued' AND j.priority = v_prio
                    AND j.run_at <= now()
                  ORDER BY j.run_at, j.id
                  LIMIT v_window
               ) c
               WHERE NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = qn.name AND q.paused)
               ORDER BY c.run_at, c.id
               LIMIT v_window
            )
            SELECT x.id FROM candidates cand
             CROSS JOIN LATERAL (
               SELECT j.id FROM jobs j
                WHERE j.id = cand.id AND j.status = 'queued' AND j.run_at <= now()
                  FOR UPDATE SKIP LOCKED
             ) x
             WHERE pg_try_advisory_xact_lock(2052980737, (cand.id % 2147483647)::int)
             LIMIT v_need);
        END IF;
        EXIT WHEN cardinality(v_got) > 0 OR v_window > v_need * 8;
        v_window := v_need * 16;
      END LOOP;
      v_ids := v_ids || v_got;
    END IF;
    EXIT WHEN cardinality(v_ids) >= p_limit;
    IF v_queues IS NULL THEN
      SELECT j.priority INTO v_prio FROM jobs j
       WHERE j.status = 'queued' AND j.priority < v_prio ORDER BY j.priority DESC LIMIT 1;
    ELSE
      SELECT max(h.priority) INTO v_prio FROM unnest(v_queues) AS qn(name)
       CROSS JOIN LATERAL (
         SELECT j.priority FROM jobs j WHERE j.queue = qn.name AND j.status = 'queued' AND j.priority < v_prio
          ORDER BY j.priority DESC LIMIT 1
       ) h
       WHERE NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = qn.name AND q.paused);
    END IF;
  END LOOP;

  IF cardinality(v_ids) = 0 THEN
    o_claimed := '[]'::jsonb;
    RETURN;
  END IF;
  -- v_at: now(), or the time taken under the last limited queue's lock (so a rate-limited
  -- queue's claims carry the time its tokens were spent).
  WITH claimed AS (
    UPDATE jobs j
       SET status = 'running', attempts = j.attempts + 1,
           max_attempts = greatest(j.max_attempts, j.attempts + 1),
           lease_token = j.lease_token + 1, locked_at = v_at, locked_by = p_worker,
           lease_seconds = p_lease_seconds, started_at = v_at, updated_at = v_at
     WHERE j.id = ANY (v_ids)
    RETURNING j.id, j.queue, j.task_type, j.payload, j.attempts, j.max_attempts, j.lease_token,
              j.lease_seconds, j.priority, j.run_at
  )
  SELECT coalesce(jsonb_agg(jsonb_build_object(
           'id', c.id::text, 'queue', c.queue, 'type', c.task_type, 'payload', c.payload,
           'attempt', c.attempts, 'maxAttempts', c.max_attempts,
           'leaseToken', c.lease_token::text, 'leaseSeconds', c.lease_seconds)
           ORDER BY c.priority DESC, c.run_at, c.id), '[]'::jsonb)
    INTO o_claimed FROM claimed c;
END
$$;

-- Sets (or, with NULLs, removes) a queue's limits; a new rate starts with a full bucket.
-- Returns the control row as it is now.
CREATE FUNCTION queue_set_limits(
  p_name text,
  p_set_max_running boolean,
  p_max_running integer,
  p_set_rate boolean,
  p_rate float8,
  p_burst integer
)
RETURNS TABLE (name text, max_running integer, rate_per_second float8, rate_burst integer)
LANGUAGE plpgsql AS $$
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
$$;

-- Creates or replaces a run-time ('api') schedule; a code-defined one (written only by the code
-- sync, as the owner) is never replaced: nothing is returned then.
-- A changed cron or time zone resets the cursor (the materialiser recomputes it from now).
CREATE FUNCTION schedule_put(
  p_name text,
  p_cron text,
  p_timezone text,
  p_type text,
  p_payload jsonb,
  p_queue text,
  p_priority integer,
  p_max_attempts integer,
  p_enabled boolean,
  p_catch_up text
)
RETURNS SETOF schedules
LANGUAGE plpgsql AS $$
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
$$;

-- Removes a run-time schedule (never a code-defined one). True if removed.
CREATE FUNCTION schedule_delete(p_name text) RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict error
BEGIN
  DELETE FROM schedules s WHERE s.name = p_name AND s.source = 'api';
  RETURN FOUND;
END
$$;

-- Pauses or resumes a schedule (any source: pausing is an operation, not an edit). A resumed
-- schedule's cursor restarts from now, as its catch_up says. Returns the row, or nothing.
CREATE FUNCTION schedule_set_enabled(p_name text, p_enabled boolean)
RETURNS SETOF schedules
LANGUAGE plpgsql AS $$
#variable_conflict error
BEGIN
  RETURN QUERY
  UPDATE schedules s SET enabled = p_enabled,
         next_at = CASE WHEN p_enabled AND NOT s.enabled AND s.catch_up = 'skip' THEN NULL ELSE s.next_at END,
         updated_at = now()
   WHERE s.name = p_name
  RETURNING s.*;
END
$$;

-- The materialiser's step: if the schedule's cursor is still `p_expected` (NULL: never set),
-- enqueue one job per element of `p_occurrences` (run_at = the occurrence, idempotency key
-- `schedule:<name>:<ISO time>`, ON CONFLICT DO NOTHING), move the cursor to `p_next_at` and
-- return how many jobs were inserted. Another materialiser got there first (the cursor moved,
-- the schedule is gone or paused): -1, nothing written. One statement, one transaction.
CREATE FUNCTION schedule_advance(
  p_name text,
  p_expected timestamptz,
  p_occurrences timestamptz[],
  p_keys text[],
  p_next_at timestamptz
)
RETURNS integer
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
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
  INSERT INTO jobs (queue, task_type, payload, priority, run_at, max_attempts, idempotency_key)
  SELECT v_s.queue, v_s.task_type, v_s.payload, v_s.priority, o.at, coalesce(v_s.max_attempts, 5), o.key
    FROM unnest(p_occurrences, p_keys) AS o(at, key)
   ORDER BY o.key
  ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;
  GET DIAGNOSTICS v_inserted = ROW_COUNT;
  UPDATE schedules s SET next_at = p_next_at,
         last_enqueued_at = CASE WHEN cardinality(p_occurrences) > 0 THEN now() ELSE s.last_enqueued_at END,
         last_run_at = coalesce((SELECT max(o) FROM unnest(p_occurrences) o), s.last_run_at),
         updated_at = now()
   WHERE s.name = p_name;
  RETURN v_inserted;
END
$$;

-- CREATE OR REPLACE resets a function's SET clauses: jobs_claim gets its fixed search_path back
-- here (its EXECUTE grant to dte_consumer is kept by the replace).
DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY[
    'jobs_claim(text, integer, integer, text[], boolean, jsonb)',
    'queue_set_limits(text, boolean, integer, boolean, float8, integer)',
    'schedule_put(text, text, text, text, jsonb, text, integer, integer, boolean, text)',
    'schedule_delete(text)',
    'schedule_set_enabled(text, boolean)',
    'schedule_advance(text, timestamptz, timestamptz[], text[], timestamptz)'
  ] LOOP
    EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f, current_schema());
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END
$$;

GRANT EXECUTE ON FUNCTION queue_set_limits(text, boolean, integer, boolean, float8, integer) TO dte_api;
GRANT EXECUTE ON FUNCTION schedule_put(text, text, text, text, jsonb, text, integer, integer, boolean, text) TO dte_api;
GRANT EXECUTE ON FUNCTION schedule_delete(text) TO dte_api;
GRANT EXECUTE ON FUNCTION schedule_set_enabled(text, boolean) TO dte_api;
GRANT EXECUTE ON FUNCTION schedule_advance(text, timestamptz, timestamptz[], text[], timestamptz) TO dte_reaper;
GRANT SELECT ON schedules TO dte_api, dte_reaper;
