-- The job table, its indexes, and the per-queue control table.
-- Statuses: queued -> running -> completed | failed. Times are always the database's now().

CREATE TABLE jobs (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue           text        NOT NULL DEFAULT 'default',
  task_type       text        NOT NULL,
  payload         jsonb       NOT NULL DEFAULT '{}'::jsonb,
  status          text        NOT NULL DEFAULT 'queued',
  priority        integer     NOT NULL DEFAULT 0,
  run_at          timestamptz NOT NULL DEFAULT now(),
  attempts        integer     NOT NULL DEFAULT 0,
  max_attempts    integer     NOT NULL DEFAULT 5,
  -- Fencing token: +1 at every claim, never decremented. Every transition after a claim
  -- matches (id, status = 'running', lease_token), so a stale worker changes nothing.
  lease_token     bigint      NOT NULL DEFAULT 0,
  locked_at       timestamptz,
  locked_by       text,
  lease_seconds   integer     NOT NULL DEFAULT 30,
  started_at      timestamptz,
  finished_at     timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  last_error      jsonb,
  result          jsonb,
  idempotency_key text,
  request_hash    text,
  CONSTRAINT jobs_status_check CHECK (status IN ('queued', 'running', 'completed', 'failed')),
  CONSTRAINT jobs_attempts_check CHECK (attempts >= 0 AND attempts <= max_attempts),
  CONSTRAINT jobs_max_attempts_check CHECK (max_attempts >= 1),
  CONSTRAINT jobs_lease_seconds_check CHECK (lease_seconds >= 1),
  CONSTRAINT jobs_queue_check CHECK (length(queue) BETWEEN 1 AND 128),
  CONSTRAINT jobs_task_type_check CHECK (length(task_type) BETWEEN 1 AND 200),
  CONSTRAINT jobs_idempotency_key_check CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 255)
);

-- Claim, per queue: the consumer reads queued jobs of its queues in (priority desc, run_at, id).
CREATE INDEX jobs_claim_queue_idx ON jobs (queue, priority DESC, run_at, id) WHERE status = 'queued';
-- Claim across all queues (QUEUES unset, the default): same order without the queue prefix, so
-- a backlog is read in index order instead of sorted.
CREATE INDEX jobs_claim_idx ON jobs (priority DESC, run_at, id) WHERE status = 'queued';
-- Reaper: running jobs by lease start; expiry is locked_at + lease_seconds.
CREATE INDEX jobs_running_lease_idx ON jobs (locked_at) WHERE status = 'running';
-- Pruning finished jobs. The runbook's hand-written cancel sets no finished_at, hence the coalesce.
CREATE INDEX jobs_finished_idx ON jobs ((coalesce(finished_at, updated_at))) WHERE status IN ('completed', 'failed');
-- Partial: most jobs carry no key, and a full index would take an entry for every one of them.
CREATE UNIQUE INDEX jobs_idempotency_key_idx ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Pause/resume per queue: consumers do not claim from a paused queue.
CREATE TABLE queues (
  name       text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 128),
  paused     boolean     NOT NULL DEFAULT false,
  paused_at  timestamptz,
  paused_by  text,
  reason     text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
