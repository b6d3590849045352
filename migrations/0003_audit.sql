-- Manual changes (taskctl): who did what, when and why. One row per job or queue changed,
-- written in the same statement or transaction as the change itself. Additive only.
--
-- No foreign key to jobs: pruning finished jobs must not erase the record of what was done to
-- them by hand. job_id is null for queue-level actions (pause, resume), which name the queue.

CREATE TABLE job_audit (
  id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id  bigint,
  queue   text,
  action  text        NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
  actor   text        NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
  reason  text,
  at      timestamptz NOT NULL DEFAULT now(),
  details jsonb       NOT NULL DEFAULT '{}'::jsonb
);

-- `taskctl jobs show <id>` reads one job's history in time order.
CREATE INDEX job_audit_job_idx ON job_audit (job_id, at) WHERE job_id IS NOT NULL;
-- Reviewing recent manual changes, and pruning old audit rows by age.
CREATE INDEX job_audit_at_idx ON job_audit (at);
