-- The schema the migrations build, dumped by tools/schema-dump.ts (npm run schema:dump).
-- Generated: do not edit. test/integration/schema-dump.test.ts compares it with a fresh migration.

-- tables

CREATE TABLE consumer_presence (
  worker_id text NOT NULL,
  queues text[],
  seen_until timestamp with time zone NOT NULL
);

CREATE TABLE job_audit (
  id bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
  job_id bigint,
  queue text,
  action text NOT NULL,
  actor text NOT NULL,
  reason text,
  at timestamp with time zone NOT NULL DEFAULT now(),
  details jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE job_counter_deltas (
  id bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
  at timestamp with time zone NOT NULL DEFAULT now(),
  compacted boolean NOT NULL DEFAULT false,
  submitted bigint NOT NULL DEFAULT 0,
  completed bigint NOT NULL DEFAULT 0,
  failed bigint NOT NULL DEFAULT 0,
  recovered bigint NOT NULL DEFAULT 0
);

CREATE TABLE job_keys (
  idempotency_key text NOT NULL,
  job_id bigint NOT NULL,
  request_hash text,
  created_by text,
  created_at timestamp with time zone NOT NULL DEFAULT now()
);

CREATE TABLE job_partitions (
  name text NOT NULL,
  kind text NOT NULL,
  lower_bound timestamp with time zone NOT NULL,
  upper_bound timestamp with time zone NOT NULL,
  created_at timestamp with time zone NOT NULL DEFAULT now()
);

CREATE TABLE jobs (
  id bigint NOT NULL DEFAULT nextval('job_ids'::regclass),
  queue text NOT NULL DEFAULT 'default'::text,
  task_type text NOT NULL,
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  status text NOT NULL DEFAULT 'queued'::text,
  priority integer NOT NULL DEFAULT 0,
  run_at timestamp with time zone NOT NULL DEFAULT now(),
  attempts integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 5,
  lease_token bigint NOT NULL DEFAULT 0,
  locked_at timestamp with time zone,
  locked_by text,
  lease_seconds integer NOT NULL DEFAULT 30,
  started_at timestamp with time zone,
  finished_at timestamp with time zone,
  created_at timestamp with time zone NOT NULL DEFAULT now(),
  updated_at timestamp with time zone NOT NULL DEFAULT now(),
  last_error jsonb,
  result jsonb,
  idempotency_key text,
  request_hash text,
  deadline_releases integer NOT NULL DEFAULT 0,
  created_by text
) PARTITION BY RANGE (COALESCE(finished_at, 'infinity'::timestamp with time zone));

CREATE TABLE jobs_finished_overflow PARTITION OF jobs DEFAULT;

CREATE TABLE jobs_live PARTITION OF jobs FOR VALUES FROM ('infinity') TO (MAXVALUE);

CREATE TABLE queue_wakes (
  queue text NOT NULL,
  woken_at timestamp with time zone NOT NULL,
  wakes bigint NOT NULL DEFAULT 1
);

CREATE TABLE queues (
  name text NOT NULL,
  paused boolean NOT NULL DEFAULT false,
  paused_at timestamp with time zone,
  paused_by text,
  reason text,
  updated_at timestamp with time zone NOT NULL DEFAULT now(),
  max_running integer,
  rate_per_second double precision,
  rate_burst integer,
  tokens double precision,
  tokens_at timestamp with time zone,
  retention text NOT NULL DEFAULT 'keep'::text
);

CREATE TABLE schedules (
  name text NOT NULL,
  cron text NOT NULL,
  timezone text NOT NULL DEFAULT 'UTC'::text,
  task_type text NOT NULL,
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  queue text NOT NULL DEFAULT 'default'::text,
  priority integer NOT NULL DEFAULT 0,
  max_attempts integer,
  enabled boolean NOT NULL DEFAULT true,
  catch_up text NOT NULL DEFAULT 'latest'::text,
  source text NOT NULL DEFAULT 'api'::text,
  next_at timestamp with time zone,
  last_enqueued_at timestamp with time zone,
  last_run_at timestamp with time zone,
  created_at timestamp with time zone NOT NULL DEFAULT now(),
  updated_at timestamp with time zone NOT NULL DEFAULT now()
);

CREATE TABLE schema_functions (
  file text NOT NULL,
  checksum text NOT NULL,
  migration_version integer NOT NULL,
  applied_at timestamp with time zone NOT NULL DEFAULT now()
);

CREATE TABLE schema_migrations (
  version integer NOT NULL,
  name text NOT NULL,
  checksum text NOT NULL,
  applied_at timestamp with time zone NOT NULL DEFAULT now()
);

-- constraints

ALTER TABLE consumer_presence ADD CONSTRAINT consumer_presence_pkey PRIMARY KEY (worker_id);
ALTER TABLE consumer_presence ADD CONSTRAINT consumer_presence_worker_id_check CHECK (((length(worker_id) >= 1) AND (length(worker_id) <= 256)));
ALTER TABLE job_audit ADD CONSTRAINT job_audit_action_check CHECK (((length(action) >= 1) AND (length(action) <= 64)));
ALTER TABLE job_audit ADD CONSTRAINT job_audit_actor_check CHECK (((length(actor) >= 1) AND (length(actor) <= 200)));
ALTER TABLE job_audit ADD CONSTRAINT job_audit_pkey PRIMARY KEY (id);
ALTER TABLE job_counter_deltas ADD CONSTRAINT job_counter_deltas_pkey PRIMARY KEY (id);
ALTER TABLE job_keys ADD CONSTRAINT job_keys_pkey PRIMARY KEY (idempotency_key);
ALTER TABLE job_partitions ADD CONSTRAINT job_partitions_check CHECK ((lower_bound < upper_bound));
ALTER TABLE job_partitions ADD CONSTRAINT job_partitions_kind_check CHECK ((kind = ANY (ARRAY['day'::text, 'legacy'::text])));
ALTER TABLE job_partitions ADD CONSTRAINT job_partitions_pkey PRIMARY KEY (name);
ALTER TABLE jobs ADD CONSTRAINT jobs_attempts_check CHECK (((attempts >= 0) AND (attempts <= max_attempts)));
ALTER TABLE jobs ADD CONSTRAINT jobs_created_by_check CHECK (((created_by IS NULL) OR ((length(created_by) >= 1) AND (length(created_by) <= 2048))));
ALTER TABLE jobs ADD CONSTRAINT jobs_idempotency_key_check CHECK (((idempotency_key IS NULL) OR ((length(idempotency_key) >= 1) AND (length(idempotency_key) <= 255))));
ALTER TABLE jobs ADD CONSTRAINT jobs_lease_seconds_check CHECK ((lease_seconds >= 1));
ALTER TABLE jobs ADD CONSTRAINT jobs_max_attempts_check CHECK ((max_attempts >= 1));
ALTER TABLE jobs ADD CONSTRAINT jobs_queue_check CHECK (((length(queue) >= 1) AND (length(queue) <= 128)));
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK ((status = ANY (ARRAY['queued'::text, 'running'::text, 'completed'::text, 'failed'::text])));
ALTER TABLE jobs ADD CONSTRAINT jobs_task_type_check CHECK (((length(task_type) >= 1) AND (length(task_type) <= 200)));
ALTER TABLE jobs_finished_overflow ADD CONSTRAINT jobs_finished_overflow_finished CHECK (((status = ANY (ARRAY['completed'::text, 'failed'::text])) AND (finished_at IS NOT NULL)));
ALTER TABLE jobs_live ADD CONSTRAINT jobs_live_unfinished CHECK (((status = ANY (ARRAY['queued'::text, 'running'::text])) AND (finished_at IS NULL)));
ALTER TABLE jobs_live ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);
ALTER TABLE queue_wakes ADD CONSTRAINT queue_wakes_pkey PRIMARY KEY (queue);
ALTER TABLE queue_wakes ADD CONSTRAINT queue_wakes_queue_check CHECK (((length(queue) >= 1) AND (length(queue) <= 128)));
ALTER TABLE queues ADD CONSTRAINT queues_max_running_check CHECK (((max_running IS NULL) OR (max_running > 0)));
ALTER TABLE queues ADD CONSTRAINT queues_name_check CHECK (((length(name) >= 1) AND (length(name) <= 128)));
ALTER TABLE queues ADD CONSTRAINT queues_pkey PRIMARY KEY (name);
ALTER TABLE queues ADD CONSTRAINT queues_rate_burst_check CHECK (((rate_burst IS NULL) OR (rate_burst > 0)));
ALTER TABLE queues ADD CONSTRAINT queues_rate_per_second_check CHECK (((rate_per_second IS NULL) OR ((rate_per_second > (0)::double precision) AND (rate_per_second <= (1000000)::double precision))));
ALTER TABLE queues ADD CONSTRAINT queues_retention_check CHECK ((retention = ANY (ARRAY['keep'::text, 'delete'::text])));
ALTER TABLE schedules ADD CONSTRAINT schedules_catch_up_check CHECK ((catch_up = ANY (ARRAY['skip'::text, 'latest'::text, 'all'::text])));
ALTER TABLE schedules ADD CONSTRAINT schedules_cron_check CHECK (((length(cron) >= 1) AND (length(cron) <= 256)));
ALTER TABLE schedules ADD CONSTRAINT schedules_max_attempts_check CHECK (((max_attempts IS NULL) OR ((max_attempts >= 1) AND (max_attempts <= 1000))));
ALTER TABLE schedules ADD CONSTRAINT schedules_name_check CHECK ((name ~ '^[A-Za-z0-9_.:-]{1,128}$'::text));
ALTER TABLE schedules ADD CONSTRAINT schedules_pkey PRIMARY KEY (name);
ALTER TABLE schedules ADD CONSTRAINT schedules_queue_check CHECK (((length(queue) >= 1) AND (length(queue) <= 128)));
ALTER TABLE schedules ADD CONSTRAINT schedules_source_check CHECK ((source = ANY (ARRAY['api'::text, 'code'::text])));
ALTER TABLE schedules ADD CONSTRAINT schedules_task_type_check CHECK (((length(task_type) >= 1) AND (length(task_type) <= 200)));
ALTER TABLE schedules ADD CONSTRAINT schedules_timezone_check CHECK (((length(timezone) >= 1) AND (length(timezone) <= 64)));
ALTER TABLE schema_functions ADD CONSTRAINT schema_functions_pkey PRIMARY KEY (file);
ALTER TABLE schema_migrations ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

-- indexes

CREATE UNIQUE INDEX consumer_presence_pkey ON <schema>.consumer_presence USING btree (worker_id);
CREATE INDEX job_audit_at_idx ON <schema>.job_audit USING btree (at);
CREATE INDEX job_audit_job_idx ON <schema>.job_audit USING btree (job_id, at) WHERE (job_id IS NOT NULL);
CREATE UNIQUE INDEX job_audit_pkey ON <schema>.job_audit USING btree (id);
CREATE INDEX job_counter_deltas_at_idx ON <schema>.job_counter_deltas USING btree (at) WHERE (NOT compacted);
CREATE UNIQUE INDEX job_counter_deltas_pkey ON <schema>.job_counter_deltas USING btree (id);
CREATE INDEX job_keys_created_at_idx ON <schema>.job_keys USING btree (created_at);
CREATE UNIQUE INDEX job_keys_pkey ON <schema>.job_keys USING btree (idempotency_key);
CREATE UNIQUE INDEX job_partitions_pkey ON <schema>.job_partitions USING btree (name);
CREATE INDEX jobs_finished_overflow_finished_idx ON <schema>.jobs_finished_overflow USING btree (finished_at);
CREATE INDEX jobs_finished_overflow_id_idx ON <schema>.jobs_finished_overflow USING btree (id);
CREATE INDEX jobs_finished_overflow_idempotency_key_idx ON <schema>.jobs_finished_overflow USING btree (idempotency_key) WHERE (idempotency_key IS NOT NULL);
CREATE INDEX jobs_claim_idx ON <schema>.jobs_live USING btree (priority DESC, run_at, id) WHERE (status = 'queued'::text);
CREATE INDEX jobs_claim_queue_idx ON <schema>.jobs_live USING btree (queue, priority DESC, run_at, id) WHERE (status = 'queued'::text);
CREATE INDEX jobs_idempotency_key_idx ON <schema>.jobs_live USING btree (idempotency_key) WHERE (idempotency_key IS NOT NULL);
CREATE UNIQUE INDEX jobs_pkey ON <schema>.jobs_live USING btree (id);
CREATE INDEX jobs_running_idx ON <schema>.jobs_live USING btree (queue, locked_at) WHERE (status = 'running'::text);
CREATE UNIQUE INDEX queue_wakes_pkey ON <schema>.queue_wakes USING btree (queue);
CREATE UNIQUE INDEX queues_pkey ON <schema>.queues USING btree (name);
CREATE UNIQUE INDEX schedules_pkey ON <schema>.schedules USING btree (name);
CREATE UNIQUE INDEX schema_functions_pkey ON <schema>.schema_functions USING btree (file);
CREATE UNIQUE INDEX schema_migrations_pkey ON <schema>.schema_migrations USING btree (version);

-- sequences

CREATE SEQUENCE job_audit_id_seq AS bigint OWNED BY job_audit.id;
CREATE SEQUENCE job_counter_deltas_id_seq AS bigint OWNED BY job_counter_deltas.id;
CREATE SEQUENCE job_ids AS bigint OWNED BY jobs.id;

-- triggers

CREATE TRIGGER jobs_count_inserted BEFORE INSERT ON <schema>.jobs FOR EACH ROW WHEN ((current_setting('dte.engine_counts'::text, true) IS DISTINCT FROM 'on'::text)) EXECUTE FUNCTION jobs_count_row_inserted();
CREATE TRIGGER jobs_count_updated AFTER UPDATE OF status ON <schema>.jobs FOR EACH ROW WHEN (((new.status = ANY (ARRAY['completed'::text, 'failed'::text])) AND (old.status IS DISTINCT FROM new.status) AND (current_setting('dte.engine_counts'::text, true) IS DISTINCT FROM 'on'::text))) EXECUTE FUNCTION jobs_count_row_updated();
CREATE TRIGGER jobs_keys_deleted AFTER DELETE ON <schema>.jobs FOR EACH ROW WHEN (((old.idempotency_key IS NOT NULL) AND (current_setting('dte.engine_counts'::text, true) IS DISTINCT FROM 'on'::text))) EXECUTE FUNCTION jobs_keys_deleted();
CREATE TRIGGER jobs_keys_truncated AFTER TRUNCATE ON <schema>.jobs FOR EACH STATEMENT EXECUTE FUNCTION jobs_keys_truncated();
CREATE TRIGGER jobs_route BEFORE UPDATE OF status, finished_at ON <schema>.jobs FOR EACH ROW WHEN ((((old.status = ANY (ARRAY['completed'::text, 'failed'::text])) IS DISTINCT FROM (new.status = ANY (ARRAY['completed'::text, 'failed'::text]))) OR (old.finished_at IS DISTINCT FROM new.finished_at))) EXECUTE FUNCTION jobs_route_moved();

-- functions

CREATE OR REPLACE FUNCTION <schema>.consumer_leave(p_worker text)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
BEGIN
  DELETE FROM consumer_presence c
   WHERE c.worker_id = p_worker OR c.seen_until < now() - interval '1 hour';
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.consumer_touch(p_worker text, p_queues text[], p_live_ms integer)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
BEGIN
  INSERT INTO consumer_presence (worker_id, queues, seen_until)
  VALUES (p_worker, p_queues, now() + make_interval(secs => p_live_ms / 1000.0))
  ON CONFLICT (worker_id) DO UPDATE SET queues = excluded.queues, seen_until = excluded.seen_until;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.job_counters_compact(p_older_than_seconds double precision, p_history_hours integer)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
DECLARE
  v_moved bigint;
BEGIN
  WITH moved AS (
    DELETE FROM job_counter_deltas d
     WHERE (NOT d.compacted AND d.at < now() - make_interval(secs => p_older_than_seconds))
        OR (d.compacted AND d.at < now() - make_interval(hours => p_history_hours))
    RETURNING d.at, d.submitted, d.completed, d.failed, d.recovered
  ), folded AS (
    INSERT INTO job_counter_deltas (at, compacted, submitted, completed, failed, recovered)
    SELECT CASE WHEN moved.at < now() - make_interval(hours => p_history_hours) THEN '-infinity'::timestamptz
                ELSE date_trunc('minute', moved.at) END,
           true, sum(moved.submitted), sum(moved.completed), sum(moved.failed), sum(moved.recovered)
      FROM moved GROUP BY 1
  )
  SELECT count(*) INTO v_moved FROM moved;
  RETURN v_moved;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_cancel(p_id bigint, p_reason text, p_actor text, p_creator_only boolean, p_caller text)
 RETURNS SETOF jobs
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
BEGIN
  -- DELETE from jobs_live + INSERT through `jobs` (into the day's partition) rather than an
  -- UPDATE that moves the row: a claim locking a queued row that was moved fails with SQLSTATE
  -- 40001, one locking a deleted row skips it (0022). Counted here (dte.engine_counts).
  PERFORM set_config('dte.engine_counts', 'on', true);
  RETURN QUERY
  WITH gone AS (
    DELETE FROM jobs_live j
     WHERE j.id = p_id AND (NOT p_creator_only OR j.created_by = p_caller)
    RETURNING j.*
  ), moved AS (
    INSERT INTO jobs (id, queue, task_type, payload, status, priority, run_at, attempts, max_attempts, lease_token, locked_at, locked_by, lease_seconds, started_at, finished_at, created_at, updated_at, last_error, result, idempotency_key, request_hash, deadline_releases, created_by)
    SELECT g.id, g.queue, g.task_type, g.payload, 'failed', g.priority, g.run_at, g.attempts, g.max_attempts,
           g.lease_token, NULL, g.locked_by, g.lease_seconds, g.started_at, now(), g.created_at, now(),
           jsonb_build_object('name', 'Cancelled', 'message', p_reason, 'actor', p_actor,
                              'at', now(), 'previousStatus', g.status, 'attempt', g.attempts),
           g.result, g.idempotency_key, g.request_hash, g.deadline_releases, g.created_by
      FROM gone g
    RETURNING jobs.*
  ), counted AS (
    INSERT INTO job_counter_deltas (failed) SELECT count(*) FROM moved HAVING count(*) > 0
  )
  SELECT m.* FROM moved m;
  PERFORM set_config('dte.engine_counts', '', true);
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_cancel_audited(p_id bigint, p_reason text, p_actor text, p_creator_only boolean, p_caller text)
 RETURNS SETOF jobs
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_claim(p_worker text, p_limit integer, p_lease_seconds integer, p_queues text[], p_advisory boolean, p_completions jsonb, OUT o_claimed jsonb, OUT o_completed text)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO '<schema>', 'pg_temp'
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

CREATE OR REPLACE FUNCTION <schema>.jobs_claim_batch(p_worker text, p_limit integer, p_lease_seconds integer, p_queues text[], p_advisory boolean, p_done_ids bigint[], p_done_tokens bigint[], p_done_results jsonb[], OUT o_ids bigint[], OUT o_queues text[], OUT o_types text[], OUT o_payloads json, OUT o_attempts integer[], OUT o_max_attempts integer[], OUT o_tokens bigint[], OUT o_lease_seconds integer, OUT o_completed bigint[])
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
 SET search_path TO '<schema>', 'pg_temp'
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

CREATE OR REPLACE FUNCTION <schema>.jobs_complete(p_completions jsonb)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
DECLARE
  v_ids bigint[];
  v_tokens bigint[];
  v_results jsonb[];
BEGIN
  SELECT array_agg(x.id), array_agg(x.token), array_agg(x.result) INTO v_ids, v_tokens, v_results
    FROM jsonb_to_recordset(p_completions) AS x(id bigint, token bigint, result jsonb);
  RETURN array_to_string(jobs_complete_batch(v_ids, v_tokens, v_results), ',');
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_complete_batch(p_ids bigint[], p_tokens bigint[], p_results jsonb[])
 RETURNS bigint[]
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
DECLARE
  v_ids bigint[];
  v_deleting text[];
BEGIN
  -- The completions as parallel arrays, read once by unnest: one primary-key probe of jobs_live
  -- per id (a nested loop from the unnest). Nothing restricts jobs_live alone, so no plan starts
  -- from it: `d.id = ANY (p_ids)` beside the join made the planner read the index by the array
  -- and re-read the unnest per row (O(n^2), issue 21; test/integration/handoff.test.ts), and
  -- `d.status = 'running'` as a filter of its own makes the plan depend on how many rows the
  -- statistics say are running. So the status is a column of the subquery (OFFSET 0 keeps it
  -- one), compared in the join.
  --
  -- A completed job leaves jobs_live (DELETE) for its day's partition (INSERT through `jobs`,
  -- which routes it), or for nowhere when its queue's retention is 'delete' (0022): no UPDATE of
  -- the live table's row, whose status sits in three partial-index predicates. Not an UPDATE that
  -- moves the row either: a concurrent locker of a moved row fails with SQLSTATE 40001, one of a
  -- deleted row skips it. The completions are counted here, in the same statement
  -- (dte.engine_counts, set around it, keeps the row counting triggers out: issue 21).
  v_deleting := ARRAY(SELECT q.name FROM queues q WHERE q.retention = 'delete');
  PERFORM set_config('dte.engine_counts', 'on', true);
  WITH done AS (
    DELETE FROM jobs_live d
     USING (SELECT u.id, u.token, u.result, 'running'::text AS running
              FROM unnest(p_ids, p_tokens, p_results) AS u(id, token, result) OFFSET 0) x
     WHERE d.id = x.id AND d.status = x.running AND d.lease_token = x.token
    RETURNING d.id, d.queue, d.task_type, d.payload, d.priority, d.run_at, d.attempts, d.max_attempts,
              d.lease_token, d.locked_by, d.lease_seconds, d.started_at, d.created_at, d.last_error,
              x.result, d.idempotency_key, d.request_hash, d.deadline_releases, d.created_by
  ), kept AS (
    INSERT INTO jobs (id, queue, task_type, payload, status, priority, run_at, attempts, max_attempts, lease_token, locked_at, locked_by, lease_seconds, started_at, finished_at, created_at, updated_at, last_error, result, idempotency_key, request_hash, deadline_releases, created_by)
    SELECT done.id, done.queue, done.task_type, done.payload, 'completed', done.priority, done.run_at,
           done.attempts, done.max_attempts, done.lease_token, NULL, done.locked_by, done.lease_seconds,
           done.started_at, now(), done.created_at, now(), done.last_error, done.result,
           done.idempotency_key, done.request_hash, done.deadline_releases, done.created_by
      FROM done
     WHERE done.queue <> ALL (v_deleting)
  ), counted AS (
    INSERT INTO job_counter_deltas (completed) SELECT count(*) FROM done HAVING count(*) > 0
  )
  SELECT array_agg(done.id) INTO v_ids FROM done;
  PERFORM set_config('dte.engine_counts', '', true);
  RETURN v_ids;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_count_inserted()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
BEGIN
  INSERT INTO job_counter_deltas (submitted, completed, failed)
  SELECT count(*),
         count(*) FILTER (WHERE status = 'completed'),
         count(*) FILTER (WHERE status = 'failed')
  FROM inserted_rows
  HAVING count(*) > 0;
  RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_count_row_inserted()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
DECLARE
  v_moving text := current_setting('dte.moving', true);
BEGIN
  IF v_moving IS NOT NULL AND split_part(v_moving, ':', 1) = NEW.id::text THEN
    PERFORM set_config('dte.moving', '', true);
    IF NEW.status IN ('completed', 'failed') AND NEW.status IS DISTINCT FROM split_part(v_moving, ':', 2) THEN
      INSERT INTO job_counter_deltas (completed, failed)
      VALUES ((NEW.status = 'completed')::int, (NEW.status = 'failed')::int);
    END IF;
    RETURN NEW;
  END IF;
  INSERT INTO job_counter_deltas (submitted, completed, failed)
  VALUES (1, (NEW.status = 'completed')::int, (NEW.status = 'failed')::int);
  IF NEW.idempotency_key IS NOT NULL THEN
    INSERT INTO job_keys (idempotency_key, job_id, request_hash, created_by)
    VALUES (NEW.idempotency_key, NEW.id, NEW.request_hash, NEW.created_by);
  END IF;
  RETURN NEW;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_count_row_updated()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
BEGIN
  INSERT INTO job_counter_deltas (completed, failed)
  VALUES ((NEW.status = 'completed')::int, (NEW.status = 'failed')::int);
  RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_count_updated()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status IN ('completed', 'failed')) THEN
    RETURN NULL;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM old_rows WHERE status IN ('completed', 'failed')) THEN
    INSERT INTO job_counter_deltas (completed, failed)
    SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed')
    FROM new_rows;
    RETURN NULL;
  END IF;
  INSERT INTO job_counter_deltas (completed, failed)
  SELECT c, f
  FROM (
    SELECT count(*) FILTER (WHERE n.status = 'completed' AND o.status <> 'completed') AS c,
           count(*) FILTER (WHERE n.status = 'failed' AND o.status <> 'failed') AS f
    FROM new_rows n JOIN old_rows o ON o.id = n.id
  ) s
  WHERE c > 0 OR f > 0;
  RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_enqueue(p_rows json, p_max_attempts integer, p_timed boolean, OUT o_ids text, OUT o_lease_seconds integer, OUT o_created_at_ms double precision, OUT o_run_at_ms text)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
BEGIN
  PERFORM set_config('dte.engine_counts', 'on', true);
  WITH ins AS (
    INSERT INTO jobs_live (queue, task_type, payload, priority, run_at, max_attempts)
    SELECT coalesce(x.queue, 'default'), x.type, coalesce(x.payload, 'null'::jsonb), coalesce(x.priority, 0),
           coalesce(x.run_at, now() + make_interval(secs => coalesce(x.delay, 0))),
           coalesce(x.max_attempts, p_max_attempts)
      FROM json_to_recordset(p_rows)
        AS x(queue text, type text, payload jsonb, priority int, run_at timestamptz, delay float8,
             max_attempts int)
    RETURNING jobs_live.id, jobs_live.lease_seconds, jobs_live.run_at, jobs_live.created_at
  ), counted AS (
    INSERT INTO job_counter_deltas (submitted) SELECT count(*) FROM ins HAVING count(*) > 0
  )
  SELECT string_agg(ins.id::text, ',' ORDER BY ins.id), min(ins.lease_seconds),
         (extract(epoch FROM min(ins.created_at)) * 1000)::float8,
         CASE WHEN p_timed
              THEN string_agg(((extract(epoch FROM ins.run_at) * 1000)::float8)::text, ',' ORDER BY ins.id)
         END
    INTO o_ids, o_lease_seconds, o_created_at_ms, o_run_at_ms
    FROM ins;
  PERFORM set_config('dte.engine_counts', '', true);
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_enqueue_columns(p_types text[], p_payloads jsonb, p_queues text[], p_priorities integer[], p_run_ats timestamp with time zone[], p_delays double precision[], p_max_attempts integer[], p_default_max_attempts integer, p_timed boolean, OUT o_ids text, OUT o_lease_seconds integer, OUT o_created_at_ms double precision, OUT o_run_at_ms text)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
DECLARE
  v_rows integer := cardinality(p_types);
BEGIN
  IF jsonb_typeof(p_payloads) IS DISTINCT FROM 'array'
     OR jsonb_array_length(p_payloads) <> v_rows
     OR cardinality(p_queues) <> v_rows
     OR cardinality(p_priorities) <> v_rows
     OR cardinality(p_run_ats) <> v_rows
     OR cardinality(p_delays) <> v_rows
     OR cardinality(p_max_attempts) <> v_rows THEN
    RAISE EXCEPTION 'jobs_enqueue_columns: every column needs one element per row (% types)', v_rows
      USING ERRCODE = '22023';
  END IF;
  PERFORM set_config('dte.engine_counts', 'on', true);
  WITH ins AS (
    INSERT INTO jobs_live (queue, task_type, payload, priority, run_at, max_attempts)
    SELECT coalesce(x.queue, 'default'), x.type, x.payload, coalesce(x.priority, 0),
           coalesce(x.run_at, now() + make_interval(secs => coalesce(x.delay, 0))),
           coalesce(x.max_attempts, p_default_max_attempts)
      FROM ROWS FROM (
             unnest(p_types), jsonb_array_elements(p_payloads), unnest(p_queues), unnest(p_priorities),
             unnest(p_run_ats), unnest(p_delays), unnest(p_max_attempts)
           ) AS x(type, payload, queue, priority, run_at, delay, max_attempts)
    RETURNING jobs_live.id, jobs_live.lease_seconds, jobs_live.run_at, jobs_live.created_at
  ), counted AS (
    INSERT INTO job_counter_deltas (submitted) SELECT count(*) FROM ins HAVING count(*) > 0
  )
  SELECT string_agg(ins.id::text, ',' ORDER BY ins.id), min(ins.lease_seconds),
         (extract(epoch FROM min(ins.created_at)) * 1000)::float8,
         CASE WHEN p_timed
              THEN string_agg(((extract(epoch FROM ins.run_at) * 1000)::float8)::text, ',' ORDER BY ins.id)
         END
    INTO o_ids, o_lease_seconds, o_created_at_ms, o_run_at_ms
    FROM ins;
  PERFORM set_config('dte.engine_counts', '', true);
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_enqueue_keyed(p_types text[], p_payloads jsonb, p_queues text[], p_priorities integer[], p_run_ats timestamp with time zone[], p_delays double precision[], p_max_attempts integer[], p_default_max_attempts integer, p_created_by text, p_keys text[], p_hashes text[])
 RETURNS TABLE(o_id bigint, o_idempotency_key text, o_lease_seconds integer, o_run_at_ms double precision, o_created_at_ms double precision)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
DECLARE
  v_rows integer := cardinality(p_types);
BEGIN
  IF jsonb_typeof(p_payloads) IS DISTINCT FROM 'array'
     OR jsonb_array_length(p_payloads) <> v_rows
     OR cardinality(p_queues) <> v_rows
     OR cardinality(p_priorities) <> v_rows
     OR cardinality(p_run_ats) <> v_rows
     OR cardinality(p_delays) <> v_rows
     OR cardinality(p_max_attempts) <> v_rows
     OR cardinality(p_keys) <> v_rows
     OR cardinality(p_hashes) <> v_rows THEN
    RAISE EXCEPTION 'jobs_enqueue_keyed: every column needs one element per row (% types)', v_rows
      USING ERRCODE = '22023';
  END IF;
  PERFORM set_config('dte.engine_counts', 'on', true);
  -- Keys first (job_keys, 0022: the partitioned table cannot hold a unique index on the key
  -- alone), each with the id of the job drawn for it, in key order as before (concurrent
  -- requests lock keys in the same order); a job only for a key that was new, or for a row
  -- without a key. Within the request the first row of a key wins, as before.
  RETURN QUERY
  WITH rows AS (
    SELECT x.type, x.payload, x.queue, x.priority, x.run_at, x.delay, x.max_attempts, x.key, x.hash, x.ord,
           row_number() OVER (PARTITION BY x.key ORDER BY x.ord) AS nth
      FROM ROWS FROM (unnest(p_types), jsonb_array_elements(p_payloads), unnest(p_queues),
                      unnest(p_priorities), unnest(p_run_ats), unnest(p_delays),
                      unnest(p_max_attempts), unnest(p_keys), unnest(p_hashes)) WITH ORDINALITY
           AS x(type, payload, queue, priority, run_at, delay, max_attempts, key, hash, ord)
  ), keys AS (
    INSERT INTO job_keys AS k (idempotency_key, job_id, request_hash, created_by)
    SELECT r.key, nextval('job_ids'), r.hash, p_created_by FROM rows r
     WHERE r.key IS NOT NULL AND r.nth = 1 ORDER BY r.key
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING k.idempotency_key, k.job_id
  ), ins AS (
  INSERT INTO jobs_live (id, queue, task_type, payload, priority, run_at, max_attempts, idempotency_key,
                         request_hash, created_by)
  SELECT coalesce(k.job_id, nextval('job_ids')), coalesce(r.queue, 'default'), r.type, r.payload,
         coalesce(r.priority, 0), coalesce(r.run_at, now() + make_interval(secs => coalesce(r.delay, 0))),
         coalesce(r.max_attempts, p_default_max_attempts), r.key, r.hash, p_created_by
    FROM rows r LEFT JOIN keys k ON k.idempotency_key = r.key
   WHERE r.key IS NULL OR k.job_id IS NOT NULL AND r.nth = 1
   ORDER BY r.key, r.ord
  RETURNING jobs_live.id, jobs_live.idempotency_key, jobs_live.lease_seconds,
            (extract(epoch FROM jobs_live.run_at) * 1000)::float8 AS run_at_ms,
            (extract(epoch FROM jobs_live.created_at) * 1000)::float8 AS created_at_ms
  ), counted AS (
    INSERT INTO job_counter_deltas (submitted) SELECT count(*) FROM ins HAVING count(*) > 0
  )
  SELECT ins.id, ins.idempotency_key, ins.lease_seconds, ins.run_at_ms, ins.created_at_ms FROM ins;
  PERFORM set_config('dte.engine_counts', '', true);
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_enqueue_unkeyed(p_types text[], p_payloads jsonb, p_queues text[], p_priorities integer[], p_run_ats timestamp with time zone[], p_delays double precision[], p_max_attempts integer[], p_default_max_attempts integer, p_created_by text, p_timed boolean, OUT o_ids text, OUT o_lease_seconds integer, OUT o_created_at_ms double precision, OUT o_run_at_ms text)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
DECLARE
  v_rows integer := cardinality(p_types);
BEGIN
  IF jsonb_typeof(p_payloads) IS DISTINCT FROM 'array'
     OR jsonb_array_length(p_payloads) <> v_rows
     OR cardinality(p_queues) <> v_rows
     OR cardinality(p_priorities) <> v_rows
     OR cardinality(p_run_ats) <> v_rows
     OR cardinality(p_delays) <> v_rows
     OR cardinality(p_max_attempts) <> v_rows THEN
    RAISE EXCEPTION 'jobs_enqueue_unkeyed: every column needs one element per row (% types)', v_rows
      USING ERRCODE = '22023';
  END IF;
  PERFORM set_config('dte.engine_counts', 'on', true);
  WITH ins AS (
    INSERT INTO jobs_live (queue, task_type, payload, priority, run_at, max_attempts, created_by)
    SELECT coalesce(x.queue, 'default'), x.type, x.payload, coalesce(x.priority, 0),
           coalesce(x.run_at, now() + make_interval(secs => coalesce(x.delay, 0))),
           coalesce(x.max_attempts, p_default_max_attempts), p_created_by
      FROM ROWS FROM (
             unnest(p_types), jsonb_array_elements(p_payloads), unnest(p_queues), unnest(p_priorities),
             unnest(p_run_ats), unnest(p_delays), unnest(p_max_attempts)
           ) AS x(type, payload, queue, priority, run_at, delay, max_attempts)
    RETURNING jobs_live.id, jobs_live.lease_seconds, jobs_live.run_at, jobs_live.created_at
  ), counted AS (
    INSERT INTO job_counter_deltas (submitted) SELECT count(*) FROM ins HAVING count(*) > 0
  )
  SELECT string_agg(ins.id::text, ',' ORDER BY ins.id), min(ins.lease_seconds),
         (extract(epoch FROM min(ins.created_at)) * 1000)::float8,
         CASE WHEN p_timed
              THEN string_agg(((extract(epoch FROM ins.run_at) * 1000)::float8)::text, ',' ORDER BY ins.id)
         END
    INTO o_ids, o_lease_seconds, o_created_at_ms, o_run_at_ms
    FROM ins;
  PERFORM set_config('dte.engine_counts', '', true);
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_fail(p_id bigint, p_token bigint, p_permanent boolean, p_backoff_base_seconds double precision, p_max_backoff_seconds double precision, p_error jsonb)
 RETURNS TABLE(status text, run_at timestamp with time zone, attempts integer)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
BEGIN
  RETURN QUERY
  WITH decision AS (
    SELECT d.id, (p_permanent OR d.attempts >= d.max_attempts) AS final,
           least(p_max_backoff_seconds, p_backoff_base_seconds * power(2, greatest(d.attempts - 1, 0))) AS cap
      FROM jobs_live d WHERE d.id = p_id AND (d.status = 'running') IS TRUE AND d.lease_token = p_token
  )
  -- `jobs`, not jobs_live: a final failure moves the row to its day's partition (jobs_route keeps
  -- finished_at; the row triggers count it). The status test, three ways (0022): `IS TRUE` keeps
  -- the plan off jobs_running_idx (the planner cannot prove it implies that predicate, as in
  -- functions/engine/sql/fence.ts), and `<> 'completed' AND <> 'failed'` refutes the finished
  -- partitions' CHECKs, so only jobs_live is read, by its primary key (constraint exclusion;
  -- `IS TRUE` alone defeats it, a plain `= 'running'` walks the running index).
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
  WHERE j.id = x.id AND (j.status = 'running') IS TRUE AND j.status <> 'completed' AND j.status <> 'failed'
    AND j.lease_token = p_token
  RETURNING j.status, j.run_at, j.attempts;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_find_by_keys(p_keys text[])
 RETURNS TABLE(id bigint, queue text, task_type text, payload jsonb, status text, priority integer, run_at timestamp with time zone, attempts integer, max_attempts integer, lease_token bigint, locked_at timestamp with time zone, locked_by text, lease_seconds integer, started_at timestamp with time zone, finished_at timestamp with time zone, created_at timestamp with time zone, updated_at timestamp with time zone, last_error jsonb, result jsonb, idempotency_key text, request_hash text, created_by text, o_gone boolean)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
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

CREATE OR REPLACE FUNCTION <schema>.jobs_keys_deleted()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = OLD.id) THEN
    DELETE FROM job_keys k WHERE k.idempotency_key = OLD.idempotency_key AND k.job_id = OLD.id;
  END IF;
  RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_keys_truncated()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
BEGIN
  DELETE FROM job_keys k WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = k.job_id);
  RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_partitions_ensure(p_days_ahead integer)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET lock_timeout TO '2s'
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
DECLARE
  v_day timestamptz;
  v_next timestamptz;
  v_name text;
  v_made integer := 0;
BEGIN
  IF p_days_ahead IS NULL OR p_days_ahead < 0 OR p_days_ahead > 60 THEN
    RAISE EXCEPTION 'jobs_partitions_ensure: days ahead must be 0 to 60, not %', p_days_ahead
      USING ERRCODE = '22023';
  END IF;
  FOR i IN 0 .. p_days_ahead LOOP
    v_day := date_trunc('day', now(), 'UTC') + make_interval(days => i);
    v_next := v_day + interval '1 day';
    CONTINUE WHEN EXISTS (SELECT 1 FROM job_partitions p WHERE p.lower_bound < v_next AND p.upper_bound > v_day);
    v_name := 'jobs_finished_' || to_char(v_day AT TIME ZONE 'UTC', 'YYYYMMDD');
    EXECUTE format('CREATE TABLE %I (LIKE jobs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_name);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (status IN (''completed'', ''failed'') '
                   'AND coalesce(finished_at, ''infinity''::timestamptz) >= %L '
                   'AND coalesce(finished_at, ''infinity''::timestamptz) < %L)',
                   v_name, v_name || '_day', v_day, v_next);
    EXECUTE format('CREATE INDEX %I ON %I (id)', v_name || '_id_idx', v_name);
    EXECUTE format('CREATE INDEX %I ON %I (idempotency_key) WHERE idempotency_key IS NOT NULL',
                   v_name || '_idempotency_key_idx', v_name);
    EXECUTE format('CREATE INDEX %I ON %I ((coalesce(finished_at, updated_at))) WHERE status = ''failed''',
                   v_name || '_failed_idx', v_name);
    -- dte.engine_counts keeps jobs_keys_deleted (functions/keys.sql) out of this DELETE: the
    -- rows' new table is not attached yet when it would run, so it found them gone from `jobs`
    -- and freed their idempotency keys.
    PERFORM set_config('dte.engine_counts', 'on', true);
    EXECUTE format('WITH moved AS (DELETE FROM jobs_finished_overflow o WHERE o.finished_at >= $1 AND o.finished_at < $2 '
                   'RETURNING o.*) INSERT INTO %I SELECT * FROM moved', v_name)
      USING v_day, v_next;
    PERFORM set_config('dte.engine_counts', '', true);
    EXECUTE format('ALTER TABLE jobs ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', v_name, v_day, v_next);
    INSERT INTO job_partitions (name, kind, lower_bound, upper_bound) VALUES (v_name, 'day', v_day, v_next);
    v_made := v_made + 1;
  END LOOP;
  RETURN v_made;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_prune_finished(p_older_than_days double precision, p_limit integer)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET lock_timeout TO '2s'
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
DECLARE
  v_cutoff timestamptz := now() - make_interval(secs => p_older_than_days * 86400);
  v_deleted bigint := 0;
  v_rows bigint;
  v_part record;
BEGIN
  FOR v_part IN SELECT p.name FROM job_partitions p WHERE p.upper_bound <= v_cutoff ORDER BY p.upper_bound LOOP
    EXECUTE format('SELECT count(*) FROM %I', v_part.name) INTO v_rows;
    EXECUTE format('ALTER TABLE jobs DETACH PARTITION %I', v_part.name);
    EXECUTE format('DROP TABLE %I', v_part.name);
    DELETE FROM job_partitions p WHERE p.name = v_part.name;
    v_deleted := v_deleted + v_rows;
  END LOOP;
  IF v_deleted < p_limit THEN
    DELETE FROM jobs_finished_overflow o WHERE o.id IN (
      SELECT f.id FROM jobs_finished_overflow f WHERE f.finished_at < v_cutoff LIMIT p_limit - v_deleted);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    v_deleted := v_deleted + v_rows;
  END IF;
  IF v_deleted < p_limit AND EXISTS (SELECT 1 FROM job_partitions p WHERE p.name = 'jobs_legacy') THEN
    EXECUTE 'DELETE FROM jobs_legacy l WHERE l.id IN (SELECT f.id FROM jobs_legacy f '
            'WHERE f.status IN (''completed'', ''failed'') AND coalesce(f.finished_at, f.updated_at) < $1 LIMIT $2)'
      USING v_cutoff, p_limit - v_deleted;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    v_deleted := v_deleted + v_rows;
  END IF;
  DELETE FROM job_keys k WHERE k.idempotency_key IN (
    SELECT o.idempotency_key FROM job_keys o
     WHERE o.created_at < v_cutoff AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = o.job_id)
     LIMIT p_limit);
  RETURN v_deleted;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_release(p_leases jsonb, p_reason text, p_max_deadline_releases integer)
 RETURNS TABLE(id bigint, status text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
BEGIN
  RETURN QUERY
  WITH leases AS (
    SELECT x.id, x.token, coalesce(x.deadline, false) AS deadline
      FROM jsonb_to_recordset(p_leases) AS x(id bigint, token bigint, deadline boolean)
  )
  -- `jobs`, not jobs_live: a final release (out of deadline releases) moves the row; the status
  -- test as in jobs_fail.
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
    AND j.id = l.id AND (j.status = 'running') IS TRUE AND j.status <> 'completed' AND j.status <> 'failed'
    AND j.lease_token = l.token
  RETURNING j.id, j.status;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_renew(p_leases jsonb)
 RETURNS TABLE(id bigint)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
BEGIN
  RETURN QUERY
  UPDATE jobs_live j SET locked_at = now(), updated_at = now()
    FROM jsonb_to_recordset(p_leases) AS x(id bigint, token bigint)
   WHERE j.id = ANY (ARRAY(SELECT (e ->> 'id')::bigint FROM jsonb_array_elements(p_leases) e))
     AND j.id = x.id AND (j.status = 'running') IS TRUE AND j.lease_token = x.token
  RETURNING j.id;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.jobs_requeue_expired(p_limit integer, OUT o_requeued bigint, OUT o_failed bigint)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
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

CREATE OR REPLACE FUNCTION <schema>.jobs_route_moved()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
BEGIN
  IF NEW.status IN ('queued', 'running') THEN
    NEW.finished_at := NULL;
  ELSE
    NEW.finished_at := coalesce(NEW.finished_at, now());
  END IF;
  PERFORM set_config('dte.moving', NEW.id::text || ':' || OLD.status, true);
  RETURN NEW;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.queue_set_limits(p_name text, p_set_max_running boolean, p_max_running integer, p_set_rate boolean, p_rate double precision, p_burst integer)
 RETURNS TABLE(name text, max_running integer, rate_per_second double precision, rate_burst integer)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
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

CREATE OR REPLACE FUNCTION <schema>.queue_set_limits_audited(p_name text, p_set_max_running boolean, p_max_running integer, p_set_rate boolean, p_rate double precision, p_burst integer, p_change jsonb, p_actor text, p_reason text)
 RETURNS TABLE(name text, max_running integer, rate_per_second double precision, rate_burst integer)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
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

CREATE OR REPLACE FUNCTION <schema>.queue_set_retention_audited(p_name text, p_retention text, p_actor text, p_reason text)
 RETURNS TABLE(name text, retention text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
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

CREATE OR REPLACE FUNCTION <schema>.queues_wake(p_queues text[], p_debounce_ms integer)
 RETURNS SETOF text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
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

CREATE OR REPLACE FUNCTION <schema>.schedule_advance(p_name text, p_expected timestamp with time zone, p_occurrences timestamp with time zone[], p_keys text[], p_next_at timestamp with time zone)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET plan_cache_mode TO 'force_generic_plan'
 SET search_path TO '<schema>', 'pg_temp'
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

CREATE OR REPLACE FUNCTION <schema>.schedule_delete(p_name text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
AS $function$
#variable_conflict error
BEGIN
  DELETE FROM schedules s WHERE s.name = p_name AND s.source = 'api';
  RETURN FOUND;
END
$function$;

CREATE OR REPLACE FUNCTION <schema>.schedule_delete_audited(p_name text, p_actor text, p_reason text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
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

CREATE OR REPLACE FUNCTION <schema>.schedule_put(p_name text, p_cron text, p_timezone text, p_type text, p_payload jsonb, p_queue text, p_priority integer, p_max_attempts integer, p_enabled boolean, p_catch_up text)
 RETURNS SETOF schedules
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
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

CREATE OR REPLACE FUNCTION <schema>.schedule_put_audited(p_name text, p_cron text, p_timezone text, p_type text, p_payload jsonb, p_queue text, p_priority integer, p_max_attempts integer, p_enabled boolean, p_catch_up text, p_actor text, p_reason text)
 RETURNS SETOF schedules
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
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

CREATE OR REPLACE FUNCTION <schema>.schedule_set_enabled(p_name text, p_enabled boolean)
 RETURNS SETOF schedules
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
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

CREATE OR REPLACE FUNCTION <schema>.schedule_set_enabled_audited(p_name text, p_enabled boolean, p_actor text, p_reason text)
 RETURNS SETOF schedules
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO '<schema>', 'pg_temp'
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

-- grants

GRANT USAGE ON SCHEMA <schema> TO dte_api;
GRANT USAGE ON SCHEMA <schema> TO dte_consumer;
GRANT USAGE ON SCHEMA <schema> TO dte_reaper;
GRANT SELECT ON TABLE consumer_presence TO dte_api;
GRANT SELECT ON TABLE consumer_presence TO dte_consumer;
GRANT SELECT ON TABLE consumer_presence TO dte_reaper;
GRANT SELECT ON TABLE job_counter_deltas TO dte_consumer;
GRANT SELECT ON TABLE job_counter_deltas TO dte_reaper;
GRANT USAGE ON SEQUENCE job_ids TO dte_api;
GRANT SELECT ON TABLE jobs TO dte_api;
GRANT SELECT ON TABLE jobs TO dte_consumer;
GRANT SELECT ON TABLE jobs TO dte_reaper;
GRANT SELECT ON TABLE queue_wakes TO dte_api;
GRANT SELECT ON TABLE queue_wakes TO dte_consumer;
GRANT SELECT ON TABLE queue_wakes TO dte_reaper;
GRANT SELECT ON TABLE queues TO dte_api;
GRANT SELECT ON TABLE queues TO dte_consumer;
GRANT SELECT ON TABLE queues TO dte_reaper;
GRANT SELECT ON TABLE schedules TO dte_api;
GRANT SELECT ON TABLE schedules TO dte_reaper;
GRANT SELECT ON TABLE schema_migrations TO dte_api;
GRANT SELECT ON TABLE schema_migrations TO dte_consumer;
GRANT SELECT ON TABLE schema_migrations TO dte_reaper;
GRANT INSERT ON TABLE jobs (idempotency_key) TO dte_api;
GRANT INSERT ON TABLE jobs (max_attempts) TO dte_api;
GRANT INSERT ON TABLE jobs (payload) TO dte_api;
GRANT INSERT ON TABLE jobs (priority) TO dte_api;
GRANT INSERT ON TABLE jobs (queue) TO dte_api;
GRANT INSERT ON TABLE jobs (request_hash) TO dte_api;
GRANT INSERT ON TABLE jobs (run_at) TO dte_api;
GRANT INSERT ON TABLE jobs (task_type) TO dte_api;
GRANT EXECUTE ON FUNCTION consumer_leave(p_worker text) TO dte_consumer;
GRANT EXECUTE ON FUNCTION consumer_touch(p_worker text, p_queues text[], p_live_ms integer) TO dte_consumer;
GRANT EXECUTE ON FUNCTION job_counters_compact(p_older_than_seconds double precision, p_history_hours integer) TO dte_reaper;
GRANT EXECUTE ON FUNCTION jobs_cancel(p_id bigint, p_reason text, p_actor text, p_creator_only boolean, p_caller text) TO dte_api;
GRANT EXECUTE ON FUNCTION jobs_cancel_audited(p_id bigint, p_reason text, p_actor text, p_creator_only boolean, p_caller text) TO dte_api;
GRANT EXECUTE ON FUNCTION jobs_claim(p_worker text, p_limit integer, p_lease_seconds integer, p_queues text[], p_advisory boolean, p_completions jsonb, OUT o_claimed jsonb, OUT o_completed text) TO dte_consumer;
GRANT EXECUTE ON FUNCTION jobs_claim_batch(p_worker text, p_limit integer, p_lease_seconds integer, p_queues text[], p_advisory boolean, p_done_ids bigint[], p_done_tokens bigint[], p_done_results jsonb[], OUT o_ids bigint[], OUT o_queues text[], OUT o_types text[], OUT o_payloads json, OUT o_attempts integer[], OUT o_max_attempts integer[], OUT o_tokens bigint[], OUT o_lease_seconds integer, OUT o_completed bigint[]) TO dte_consumer;
GRANT EXECUTE ON FUNCTION jobs_complete(p_completions jsonb) TO dte_consumer;
GRANT EXECUTE ON FUNCTION jobs_complete_batch(p_ids bigint[], p_tokens bigint[], p_results jsonb[]) TO dte_consumer;
GRANT EXECUTE ON FUNCTION jobs_count_inserted() TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_count_row_inserted() TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_count_row_updated() TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_count_updated() TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_enqueue(p_rows json, p_max_attempts integer, p_timed boolean, OUT o_ids text, OUT o_lease_seconds integer, OUT o_created_at_ms double precision, OUT o_run_at_ms text) TO dte_api;
GRANT EXECUTE ON FUNCTION jobs_enqueue_columns(p_types text[], p_payloads jsonb, p_queues text[], p_priorities integer[], p_run_ats timestamp with time zone[], p_delays double precision[], p_max_attempts integer[], p_default_max_attempts integer, p_timed boolean, OUT o_ids text, OUT o_lease_seconds integer, OUT o_created_at_ms double precision, OUT o_run_at_ms text) TO dte_api;
GRANT EXECUTE ON FUNCTION jobs_enqueue_keyed(p_types text[], p_payloads jsonb, p_queues text[], p_priorities integer[], p_run_ats timestamp with time zone[], p_delays double precision[], p_max_attempts integer[], p_default_max_attempts integer, p_created_by text, p_keys text[], p_hashes text[]) TO dte_api;
GRANT EXECUTE ON FUNCTION jobs_enqueue_unkeyed(p_types text[], p_payloads jsonb, p_queues text[], p_priorities integer[], p_run_ats timestamp with time zone[], p_delays double precision[], p_max_attempts integer[], p_default_max_attempts integer, p_created_by text, p_timed boolean, OUT o_ids text, OUT o_lease_seconds integer, OUT o_created_at_ms double precision, OUT o_run_at_ms text) TO dte_api;
GRANT EXECUTE ON FUNCTION jobs_fail(p_id bigint, p_token bigint, p_permanent boolean, p_backoff_base_seconds double precision, p_max_backoff_seconds double precision, p_error jsonb) TO dte_consumer;
GRANT EXECUTE ON FUNCTION jobs_find_by_keys(p_keys text[]) TO dte_api;
GRANT EXECUTE ON FUNCTION jobs_keys_deleted() TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_keys_truncated() TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobs_partitions_ensure(p_days_ahead integer) TO dte_reaper;
GRANT EXECUTE ON FUNCTION jobs_prune_finished(p_older_than_days double precision, p_limit integer) TO dte_reaper;
GRANT EXECUTE ON FUNCTION jobs_release(p_leases jsonb, p_reason text, p_max_deadline_releases integer) TO dte_consumer;
GRANT EXECUTE ON FUNCTION jobs_renew(p_leases jsonb) TO dte_consumer;
GRANT EXECUTE ON FUNCTION jobs_requeue_expired(p_limit integer, OUT o_requeued bigint, OUT o_failed bigint) TO dte_reaper;
GRANT EXECUTE ON FUNCTION jobs_route_moved() TO PUBLIC;
GRANT EXECUTE ON FUNCTION queue_set_limits(p_name text, p_set_max_running boolean, p_max_running integer, p_set_rate boolean, p_rate double precision, p_burst integer) TO dte_api;
GRANT EXECUTE ON FUNCTION queue_set_limits_audited(p_name text, p_set_max_running boolean, p_max_running integer, p_set_rate boolean, p_rate double precision, p_burst integer, p_change jsonb, p_actor text, p_reason text) TO dte_api;
GRANT EXECUTE ON FUNCTION queue_set_retention_audited(p_name text, p_retention text, p_actor text, p_reason text) TO dte_api;
GRANT EXECUTE ON FUNCTION queues_wake(p_queues text[], p_debounce_ms integer) TO dte_api;
GRANT EXECUTE ON FUNCTION queues_wake(p_queues text[], p_debounce_ms integer) TO dte_reaper;
GRANT EXECUTE ON FUNCTION schedule_advance(p_name text, p_expected timestamp with time zone, p_occurrences timestamp with time zone[], p_keys text[], p_next_at timestamp with time zone) TO dte_reaper;
GRANT EXECUTE ON FUNCTION schedule_delete(p_name text) TO dte_api;
GRANT EXECUTE ON FUNCTION schedule_delete_audited(p_name text, p_actor text, p_reason text) TO dte_api;
GRANT EXECUTE ON FUNCTION schedule_put(p_name text, p_cron text, p_timezone text, p_type text, p_payload jsonb, p_queue text, p_priority integer, p_max_attempts integer, p_enabled boolean, p_catch_up text) TO dte_api;
GRANT EXECUTE ON FUNCTION schedule_put_audited(p_name text, p_cron text, p_timezone text, p_type text, p_payload jsonb, p_queue text, p_priority integer, p_max_attempts integer, p_enabled boolean, p_catch_up text, p_actor text, p_reason text) TO dte_api;
GRANT EXECUTE ON FUNCTION schedule_set_enabled(p_name text, p_enabled boolean) TO dte_api;
GRANT EXECUTE ON FUNCTION schedule_set_enabled_audited(p_name text, p_enabled boolean, p_actor text, p_reason text) TO dte_api;
