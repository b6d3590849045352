-- Exact counters for the required metrics (phase6_task_*_total), kept in the same transaction
-- as each state change, including changes made by hand-written SQL.
--
-- Insert-only deltas: each statement that changes jobs adds at most one row, so concurrent
-- consumers never wait on a shared counter row. The reaper compacts old rows per minute (the
-- per-minute history feeds dashboards). Totals are sum() over the table.

CREATE TABLE job_counter_deltas (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at        timestamptz NOT NULL DEFAULT now(),
  compacted boolean     NOT NULL DEFAULT false,
  submitted bigint      NOT NULL DEFAULT 0,
  completed bigint      NOT NULL DEFAULT 0,
  failed    bigint      NOT NULL DEFAULT 0,
  recovered bigint      NOT NULL DEFAULT 0
);
CREATE INDEX job_counter_deltas_at_idx ON job_counter_deltas (at) WHERE NOT compacted;

CREATE FUNCTION jobs_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO job_counter_deltas (submitted, completed, failed)
  SELECT count(*),
         count(*) FILTER (WHERE status = 'completed'),
         count(*) FILTER (WHERE status = 'failed')
  FROM inserted_rows
  HAVING count(*) > 0;
  RETURN NULL;
END
$$;

-- Claims, renewals and releases change no counter: skip the join unless a row became terminal.
CREATE FUNCTION jobs_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status IN ('completed', 'failed')) THEN
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
$$;

CREATE TRIGGER jobs_count_inserted AFTER INSERT ON jobs
  REFERENCING NEW TABLE AS inserted_rows
  FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_inserted();

CREATE TRIGGER jobs_count_updated AFTER UPDATE ON jobs
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_updated();
