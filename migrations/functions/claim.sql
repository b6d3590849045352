-- The consumer's claim, in one statement per call: complete the previous batch (p_completions),
-- then claim up to p_limit queued jobs under fresh fenced leases and return them as JSON.
--
-- Candidates are picked into v_ids by the step that applies; one shared tail then leases them:
--   1. queues with a limit (max_running, rate_per_second; 0011) that have due jobs: each under
--      its control row's lock (FOR UPDATE SKIP LOCKED: a queue another claimer is serving is
--      skipped, never waited for), at most min(max_running - running, floor(tokens)) each,
--      tokens spent in this transaction;
--   2. which queues the rest comes from: p_queues minus the limited ones, or (all queues, p_queues
--      NULL) when some queue is paused or limited, the queues with queued jobs (jumping from one
--      to the next through jobs_claim_queue_idx) minus the paused and limited ones (0008). With
--      no pause and no limit, v_queues stays NULL: one index over every queue;
--   3. level by level from the highest priority with queued jobs, oldest run_at first, what is
--      left of p_limit: FOR UPDATE SKIP LOCKED, or with p_advisory a window of candidates
--      (8x, then 16x what is needed) filtered through pg_try_advisory_xact_lock first;
--      per level, one statement per queue shape (every queue through jobs_claim_idx, or named
--      queues through jobs_claim_queue_idx) so each keeps its own cached generic plan;
--   4. the tail: one UPDATE ... RETURNING of v_ids, aggregated into one row of parallel arrays in
--      claim order (no jsonb object per job: issue 21).
-- Rows scheduled for later are never read: within a level the claim index is in run_at order, so
-- `run_at <= now()` bounds the scan (0008). PL/pgSQL with force_generic_plan: plans are cached per
-- backend, no session state (pooler-safe). The consumer sends `SELECT … FROM jobs_claim_batch(…)`
-- (completions as parallel arrays of ids, tokens and results), which the fault suite's worker
-- recognises; jobs_claim, below, keeps the previous release's signature working.
--
-- Source of truth for this function (migrations/README.md, "Function files").

CREATE OR REPLACE FUNCTION jobs_claim_batch(p_worker text, p_limit integer, p_lease_seconds integer, p_queues text[], p_advisory boolean, p_done_ids bigint[], p_done_tokens bigint[], p_done_results jsonb[], OUT o_ids bigint[], OUT o_queues text[], OUT o_types text[], OUT o_payloads json, OUT o_attempts integer[], OUT o_max_attempts integer[], OUT o_tokens bigint[], OUT o_lease_seconds integer, OUT o_completed bigint[])
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 -- Plans by index whatever the table's size or statistics: a generic plan cached on a small,
 -- never-analyzed table otherwise scans it whole (finding 6 in docs/BENCHMARKS.md). jit off: the
 -- disabled scans' cost would pass jit_above_cost and compile the queues lookups at every call.
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
DECLARE
  v_queues text[] := p_queues;
  v_ids bigint[] := '{}';
  v_got bigint[];
  v_prio integer;
  v_below bigint := 2147483648;
  v_need integer;
  v_window integer;
  v_limits boolean;
  v_limited text[];
  v_ctl record;
  v_at timestamptz := now();
  v_running integer;
  v_tokens float8;
  v_allow integer;
BEGIN
  IF cardinality(p_done_ids) > 0 THEN
    o_completed := jobs_complete_batch(p_done_ids, p_done_tokens, p_done_results);
  END IF;

  -- 1. Limited queues (only when some queue has a limit): each under its control row's lock.
  v_limits := EXISTS (SELECT 1 FROM queues q WHERE q.max_running IS NOT NULL OR q.rate_per_second IS NOT NULL);
  IF v_limits THEN
    SELECT coalesce(array_agg(q.name ORDER BY q.name), '{}') INTO v_limited FROM queues q
     WHERE (q.max_running IS NOT NULL OR q.rate_per_second IS NOT NULL)
       AND (v_queues IS NULL OR q.name = ANY (v_queues));
    FOR i IN 1 .. cardinality(v_limited) LOOP
      EXIT WHEN cardinality(v_ids) >= p_limit;
      -- Nothing due in this queue: leave its control row alone (no lock, no token write).
      CONTINUE WHEN NOT EXISTS (SELECT 1 FROM jobs_live j
                                 WHERE j.queue = v_limited[i] AND j.status = 'queued' AND j.run_at <= now());
      -- SKIP LOCKED: while another claimer holds this queue's row it is that claimer's to serve;
      -- waiting for it made every claim, of any queue, queue up behind the limited one (the
      -- bench's limits scenario: an unlimited queue drained at 0.81x with a limited queue beside it).
      SELECT q.paused, q.max_running, q.rate_per_second, q.rate_burst, q.tokens, q.tokens_at
        INTO v_ctl FROM queues q WHERE q.name = v_limited[i] FOR UPDATE SKIP LOCKED;
      CONTINUE WHEN NOT FOUND OR v_ctl.paused OR (v_ctl.max_running IS NULL AND v_ctl.rate_per_second IS NULL);
      -- After the lock: the previous holder's claims are committed and visible to this
      -- statement's snapshot, and clock_timestamp() is later than the tokens_at it wrote.
      v_at := clock_timestamp();
      v_allow := p_limit - cardinality(v_ids);
      IF v_ctl.max_running IS NOT NULL THEN
        SELECT count(*) INTO v_running FROM jobs_live j WHERE j.queue = v_limited[i] AND j.status = 'running';
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
      v_got := '{}';
      IF v_allow > 0 THEN
        v_got := ARRAY(
          SELECT j.id FROM jobs_live j
           WHERE j.queue = v_limited[i] AND j.status = 'queued' AND j.run_at <= now()
           ORDER BY j.priority DESC, j.run_at, j.id
           LIMIT v_allow
           FOR UPDATE SKIP LOCKED);
      END IF;
      v_ids := v_ids || v_got;
      -- Tokens written only when spent: the bucket is a function of (tokens, tokens_at), so a
      -- claim that took none leaves the same refill for the next one to compute.
      IF v_ctl.rate_per_second IS NOT NULL AND cardinality(v_got) > 0 THEN
        UPDATE queues q SET tokens = v_tokens - cardinality(v_got), tokens_at = v_at
         WHERE q.name = v_limited[i];
      END IF;
    END LOOP;
    IF v_queues IS NOT NULL THEN
      v_queues := ARRAY(SELECT qn.name FROM unnest(v_queues) AS qn(name) WHERE qn.name <> ALL (v_limited));
    END IF;
  END IF;

  -- 2. All queues, some paused or limited: the queues with queued jobs, minus those.
  IF v_queues IS NULL AND (v_limits OR EXISTS (SELECT 1 FROM queues q WHERE q.paused)) THEN
    WITH RECURSIVE qs(name) AS (
      (SELECT j.queue FROM jobs_live j WHERE j.status = 'queued' ORDER BY j.queue LIMIT 1)
      UNION ALL
      SELECT (SELECT j.queue FROM jobs_live j WHERE j.status = 'queued' AND j.queue > qs.name
               ORDER BY j.queue LIMIT 1)
        FROM qs WHERE qs.name IS NOT NULL
    )
    SELECT coalesce(array_agg(qs.name), '{}') INTO v_queues FROM qs
     WHERE qs.name IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = qs.name
                        AND (q.paused OR q.max_running IS NOT NULL OR q.rate_per_second IS NOT NULL));
  END IF;
  IF cardinality(v_ids) >= p_limit THEN
    v_queues := '{}';
  END IF;

  -- 3. Level by level: v_prio is the highest priority below v_below with queued jobs.
  LOOP
    IF v_queues IS NULL THEN
      SELECT j.priority INTO v_prio FROM jobs_live j
       WHERE j.status = 'queued' AND j.priority < v_below ORDER BY j.priority DESC LIMIT 1;
    ELSIF cardinality(v_queues) > 0 THEN
      SELECT max(h.priority) INTO v_prio FROM unnest(v_queues) AS qn(name)
       CROSS JOIN LATERAL (
         SELECT j.priority FROM jobs_live j WHERE j.queue = qn.name AND j.status = 'queued' AND j.priority < v_below
          ORDER BY j.priority DESC LIMIT 1
       ) h
       WHERE NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = qn.name AND q.paused);
    END IF;
    EXIT WHEN v_prio IS NULL;
    v_below := v_prio;
    v_need := p_limit - cardinality(v_ids);
    IF NOT p_advisory AND v_queues IS NULL THEN
      v_got := ARRAY(
        SELECT j.id FROM jobs_live j
         WHERE j.status = 'queued' AND j.priority = v_prio AND j.run_at <= now()
         ORDER BY j.run_at, j.id
         LIMIT v_need
         FOR UPDATE SKIP LOCKED);
    ELSIF NOT p_advisory THEN
      v_got := ARRAY(
        SELECT c.id FROM unnest(v_queues) AS qn(name)
         CROSS JOIN LATERAL (
           SELECT j.id, j.run_at FROM jobs_live j
            WHERE j.queue = qn.name AND j.status = 'queued' AND j.priority = v_prio AND j.run_at <= now()
            ORDER BY j.run_at, j.id
            LIMIT v_need
              FOR UPDATE SKIP LOCKED
         ) c
         WHERE NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = qn.name AND q.paused)
         ORDER BY c.run_at, c.id
         LIMIT v_need);
    ELSE
      -- Advisory: a window of candidates in claim order, each taken only if its advisory lock
      -- (tried first) and its row lock are free. The window is a CTE of the same statement (one
      -- statement per try: an array handed to a second statement measured 0.15 ms dearer).
      v_window := v_need * 8;
      LOOP
        IF v_queues IS NULL THEN
          v_got := ARRAY(
            WITH candidates AS MATERIALIZED (
              SELECT j.id FROM jobs_live j
               WHERE j.status = 'queued' AND j.priority = v_prio AND j.run_at <= now()
               ORDER BY j.run_at, j.id
               LIMIT v_window
            )
            SELECT x.id FROM candidates cand
             CROSS JOIN LATERAL (
               SELECT j.id FROM jobs_live j
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
                 SELECT j.id, j.run_at FROM jobs_live j
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
               SELECT j.id FROM jobs_live j
                WHERE j.id = cand.id AND j.status = 'queued' AND j.run_at <= now()
                  FOR UPDATE SKIP LOCKED
             ) x
             WHERE pg_try_advisory_xact_lock(2052980737, (cand.id % 2147483647)::int)
             LIMIT v_need);
        END IF;
        EXIT WHEN cardinality(v_got) > 0 OR v_window > v_need * 8;
        v_window := v_need * 16;
      END LOOP;
    END IF;
    v_ids := v_ids || v_got;
    EXIT WHEN cardinality(v_ids) >= p_limit;
  END LOOP;

  -- 4. The shared tail. v_at: now(), or the time taken under the last limited queue's lock (so
  -- a rate-limited queue's claims carry the time its tokens were spent).
  o_lease_seconds := p_lease_seconds;
  IF cardinality(v_ids) = 0 THEN
    RETURN;
  END IF;
  -- One row of parallel arrays: every aggregate of one Agg node reads the rows in the same order
  -- (the sorted subquery's, claim order). The payloads are one json array of their jsonb texts,
  -- concatenated, which the client parses with one JSON.parse. Building a jsonb object per job
  -- and aggregating them (jsonb_build_object + jsonb_agg) was 21% of the server's time at a
  -- claim of 500 (issue 21's profile); this hand-off measured about 0.8x its server CPU per job.
  WITH claimed AS (
    UPDATE jobs_live j
       SET status = 'running', attempts = j.attempts + 1,
           max_attempts = greatest(j.max_attempts, j.attempts + 1),
           lease_token = j.lease_token + 1, locked_at = v_at, locked_by = p_worker,
           lease_seconds = p_lease_seconds, started_at = v_at, updated_at = v_at
     WHERE j.id = ANY (v_ids)
    RETURNING j.id, j.queue, j.task_type, j.payload, j.attempts, j.max_attempts, j.lease_token,
              j.priority, j.run_at
  )
  SELECT array_agg(c.id), array_agg(c.queue), array_agg(c.task_type), json_agg(c.payload),
         array_agg(c.attempts), array_agg(c.max_attempts), array_agg(c.lease_token)
    INTO o_ids, o_queues, o_types, o_payloads, o_attempts, o_max_attempts, o_tokens
    FROM (SELECT * FROM claimed ORDER BY claimed.priority DESC, claimed.run_at, claimed.id) c;
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_claim_batch(text, integer, integer, text[], boolean, bigint[], bigint[], jsonb[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_claim_batch(text, integer, integer, text[], boolean, bigint[], bigint[], jsonb[]) TO dte_consumer;

-- The previous release's claim (migration 0006's signature), which its consumers still call after
-- this one is deployed: the completions unpacked from their jsonb recordset, the claim above, and
-- the claimed jobs packed into its jsonb array of ClaimedJob objects, in claim order.
CREATE OR REPLACE FUNCTION jobs_claim(p_worker text, p_limit integer, p_lease_seconds integer, p_queues text[], p_advisory boolean, p_completions jsonb, OUT o_claimed jsonb, OUT o_completed text)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO :"schema", pg_temp
AS $function$
#variable_conflict error
DECLARE
  v_done_ids bigint[];
  v_done_tokens bigint[];
  v_done_results jsonb[];
  v record;
BEGIN
  SELECT array_agg(x.id), array_agg(x.token), array_agg(x.result)
    INTO v_done_ids, v_done_tokens, v_done_results
    FROM jsonb_to_recordset(p_completions) AS x(id bigint, token bigint, result jsonb);
  SELECT * INTO v FROM jobs_claim_batch(p_worker, p_limit, p_lease_seconds, p_queues, p_advisory,
                                        v_done_ids, v_done_tokens, v_done_results);
  o_completed := array_to_string(v.o_completed, ',');
  SELECT coalesce(jsonb_agg(jsonb_build_object(
           'id', v.o_ids[p.n]::text, 'queue', v.o_queues[p.n], 'type', v.o_types[p.n],
           'payload', p.payload::jsonb, 'attempt', v.o_attempts[p.n], 'maxAttempts', v.o_max_attempts[p.n],
           'leaseToken', v.o_tokens[p.n]::text, 'leaseSeconds', v.o_lease_seconds)
           ORDER BY p.n), '[]'::jsonb)
    INTO o_claimed FROM json_array_elements(v.o_payloads) WITH ORDINALITY AS p(payload, n);
END
$function$;
REVOKE EXECUTE ON FUNCTION jobs_claim(text, integer, integer, text[], boolean, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_claim(text, integer, integer, text[], boolean, jsonb) TO dte_consumer;
