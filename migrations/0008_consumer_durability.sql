-- Consumer durability (issue 15): deadline releases are counted and capped per job, the claim
-- never walks paused or future rows, and the consumer role writes jobs only through functions.
--
-- 1. `deadline_releases`: how often a job was handed back at an invocation deadline, either
--    started and aborted there or not started because its task's timeoutSeconds is longer than a
--    whole invocation. Such a release gives the attempt back (the job did not fail), so before this a
--    job longer than any invocation looped forever (claimed, aborted, released, claimed ...).
--    `jobs_release` now counts those releases, and a job that reaches the consumer's cap ends
--    `failed` ("exceeds the invocation time") instead of being released once more. Other
--    releases (not started at wind-down, consumer stopped, queue paused) count nothing.
--    Adding a column with a constant default is a catalog change only: no table rewrite.
--
-- 2. `jobs_claim` reads priority levels one at a time, highest first: within one level the
--    claim index is in (run_at, id) order, so `run_at <= now()` bounds the index scan and rows
--    scheduled for later are never walked (before, 200,000 high-priority future rows were
--    walked by every claim). When some queue is paused, an all-queues claim first lists the
--    queues that have queued jobs (one index probe per queue, jumping over each queue's rows)
--    and reads only the unpaused ones, each through jobs_claim_queue_idx, as a named-queue claim
--    does (before, 0 / 20k / 200k paused jobs made a claim 1.3 / 25 / 260 ms). Same signature,
--    same answer, same locking (SKIP LOCKED, or the advisory try-locks).
--
-- 3. Least privilege for dte_consumer: the claim, complete, fail, renew and release are
--    SECURITY DEFINER functions with a fixed search_path (this schema, then pg_temp), and the
--    role loses UPDATE on jobs and INSERT on job_counter_deltas. It can change a job only as
--    those statements do: fenced by (status = 'running', lease_token), never a payload, queue or
--    max_attempts. The counting triggers fire inside the functions and so run as their owner,
--    who keeps writing the deltas: the counters stay exact.
--
-- Expand/contract: what this breaks. The previous release's consumer calls jobs_claim and
-- jobs_complete (still there, same signatures) but sends fail, renew and release as UPDATE
-- statements, which dte_consumer may no longer run: until its containers are replaced, their
-- failures, lease renewals and deadline releases are refused (42501) and those jobs come back
-- through the reaper when their leases expire (fenced: nothing is lost or done twice). Roll the
-- consumer forward with this migration; a rollback of the code needs `GRANT UPDATE ON jobs TO
-- dte_consumer` by hand.

ALTER TABLE jobs ADD COLUMN deadline_releases integer NOT NULL DEFAULT 0;

-- The claim: completes `p_completions` (jobs_complete, fenced per job), then claims up to
-- `p_limit` due jobs of `p_queues` (NULL: every queue) for `p_worker`, in claim order
-- (priority DESC, run_at, id), never from a paused queue. See migration 0006 for the answer's
-- shape, the advisory path and why the statements are static.
--
-- Level by level: the highest priority with queued rows is one index probe; the due rows of
-- that level are taken in (run_at, id) order (the scan stops at the first future row); then the
-- next lower level, until the batch is full or no level is left. A claim from one level (the
-- common case) is three short statements and the update. Each statement has one generic plan.
-- The rows taken are locked as they are read (or try-locked on the advisory path) and updated
-- in one statement at the end, by primary key.
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
BEGIN
  IF jsonb_array_length(p_completions) > 0 THEN
    o_completed := jobs_complete(p_completions);
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
  ELSE
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
      -- Locks up to v_need rows of each queue's level and keeps the best v_need; the others
      -- stay locked (skipped by other claimers) only until the commit.
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
      -- Advisory: a window of candidates read without locking, each try-locked (namespace
      -- 2052980737: ADVISORY_NAMESPACE in claimJobs.ts) as it is pulled, then its row with SKIP
      -- LOCKED and a fresh check; a level that gave nothing is looked at once more, twice as deep.
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
  WITH claimed AS (
    UPDATE jobs j
       SET status = 'running', attempts = j.attempts + 1,
           max_attempts = greatest(j.max_attempts, j.attempts + 1),
           lease_token = j.lease_token + 1, locked_at = now(), locked_by = p_worker,
           lease_seconds = p_lease_seconds, started_at = now(), updated_at = now()
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

-- A failed attempt, fenced (failJob.ts sent this statement as text before). Retryable with
-- attempts left: back to `queued` after base·2^(attempt-1) capped at the maximum, with equal
-- jitter, never below the base. Otherwise `failed`. No row: the lease was lost.
CREATE FUNCTION jobs_fail(
  p_id bigint,
  p_token bigint,
  p_permanent boolean,
  p_backoff_base_seconds float8,
  p_max_backoff_seconds float8,
  p_error jsonb
)
RETURNS TABLE (status text, run_at timestamptz, attempts integer)
LANGUAGE plpgsql SECURITY DEFINER SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict error
BEGIN
  RETURN QUERY
  WITH decision AS (
    SELECT d.id, (p_permanent OR d.attempts >= d.max_attempts) AS final,
           least(p_max_backoff_seconds, p_backoff_base_seconds * power(2, greatest(d.attempts - 1, 0))) AS cap
      FROM jobs d WHERE d.id = p_id AND d.status = 'running' AND d.lease_token = p_token
  )
  UPDATE jobs j SET
    status = CASE WHEN x.final THEN 'failed' ELSE 'queued' END,
    run_at = CASE WHEN x.final THEN j.run_at
             ELSE now() + make_interval(secs => greatest(p_backoff_base_seconds, x.cap / 2 + random() * x.cap / 2)) END,
    finished_at = CASE WHEN x.final THEN now() END,
    last_error = p_error,
    locked_at = NULL,
    locked_by = CASE WHEN x.final THEN j.locked_by END,
    updated_at = now()
  FROM decision x
  WHERE j.id = x.id AND j.status = 'running' AND j.lease_token = p_token
  RETURNING j.status, j.run_at, j.attempts;
END
$$;

-- Heartbeat: renews locked_at for the leases in `p_leases` (a jsonb array of {id, token}) still
-- held; returns their ids. Fenced and by primary key as fence.ts describes.
CREATE FUNCTION jobs_renew(p_leases jsonb)
RETURNS TABLE (id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict error
BEGIN
  RETURN QUERY
  UPDATE jobs j SET locked_at = now(), updated_at = now()
    FROM jsonb_to_recordset(p_leases) AS x(id bigint, token bigint)
   WHERE j.id = ANY (ARRAY(SELECT (e ->> 'id')::bigint FROM jsonb_array_elements(p_leases) e))
     AND j.id = x.id AND (j.status = 'running') IS TRUE AND j.lease_token = x.token
  RETURNING j.id;
END
$$;

-- Hands leases back (a jsonb array of {id, token, deadline}): `queued` again, the claim's
-- attempt given back. A lease marked `deadline` (started and aborted at the invocation
-- deadline, or not started because its timeout is longer than a whole invocation) counts in
-- deadline_releases; a job that has already been released `p_max_deadline_releases` times that
-- way ends `failed` instead, its attempt kept, with a last_error that says why. Fenced; returns
-- each changed job's id and new status.
CREATE FUNCTION jobs_release(p_leases jsonb, p_reason text, p_max_deadline_releases integer)
RETURNS TABLE (id bigint, status text)
LANGUAGE plpgsql SECURITY DEFINER SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict error
BEGIN
  RETURN QUERY
  WITH leases AS (
    SELECT x.id, x.token, coalesce(x.deadline, false) AS deadline
      FROM jsonb_to_recordset(p_leases) AS x(id bigint, token bigint, deadline boolean)
  )
  UPDATE jobs j SET
    status = CASE WHEN l.deadline AND j.deadline_releases >= p_max_deadline_releases THEN 'failed' ELSE 'queued' END,
    attempts = CASE WHEN l.deadline AND j.deadline_releases >= p_max_deadline_releases THEN j.attempts
               ELSE j.attempts - 1 END,
    finished_at = CASE WHEN l.deadline AND j.deadline_releases >= p_max_deadline_releases THEN now() END,
    deadline_releases = j.deadline_releases + CASE WHEN l.deadline THEN 1 ELSE 0 END,
    locked_at = NULL,
    locked_by = CASE WHEN l.deadline AND j.deadline_releases >= p_max_deadline_releases THEN j.locked_by END,
    updated_at = now(),
    last_error = CASE
      WHEN l.deadline AND j.deadline_releases >= p_max_deadline_releases THEN jsonb_build_object(
        'name', 'InvocationTimeExceeded',
        'message', format('exceeds the invocation time: stopped at the invocation deadline %s times '
                          '(released %s times, the most allowed)', j.deadline_releases + 1, j.deadline_releases),
        'attempt', j.attempts, 'deadlineReleases', j.deadline_releases + 1,
        'worker', j.locked_by, 'at', now())
      ELSE jsonb_build_object(
        'name', 'Released', 'message', p_reason, 'worker', j.locked_by, 'at', now(),
        'deadlineReleases', j.deadline_releases + CASE WHEN l.deadline THEN 1 ELSE 0 END)
      END
  FROM leases l
  WHERE j.id = ANY (ARRAY(SELECT (e ->> 'id')::bigint FROM jsonb_array_elements(p_leases) e))
    AND j.id = l.id AND (j.status = 'running') IS TRUE AND j.lease_token = l.token
  RETURNING j.id, j.status;
END
$$;

-- Every function the consumer runs: SECURITY DEFINER with this schema then pg_temp as its
-- search_path (the schema is the deployment's, or a test file's), EXECUTE for dte_consumer only.
DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY[
    'jobs_claim(text, integer, integer, text[], boolean, jsonb)',
    'jobs_complete(jsonb)',
    'jobs_fail(bigint, bigint, boolean, float8, float8, jsonb)',
    'jobs_renew(jsonb)',
    'jobs_release(jsonb, text, integer)'
  ] LOOP
    EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f, current_schema());
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO dte_consumer', f);
  END LOOP;
END
$$;

REVOKE UPDATE ON jobs FROM dte_consumer;
REVOKE INSERT ON job_counter_deltas FROM dte_consumer;
