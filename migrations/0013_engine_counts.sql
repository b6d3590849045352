-- Counting without transition tables (issue 21).
--
-- The statement-level counting triggers of 0002/0005 captured every updated row of every
-- statement in transition tables (old and new), claims and renewals included: 4-6% of the
-- server's time in the drain. From here on the engine's own functions count what they change
-- in the same statement (a data-modifying CTE inserting their delta row) with
-- `dte.engine_counts` set to 'on' around it (set_config(…, true): a SET clause on the function
-- is refused to a non-superuser owner, as on RDS); every other writer (the runbook's hand-written SQL, taskctl,
-- transactional enqueue in an app's transaction) is counted by the row-level triggers below,
-- whose WHEN is false inside those functions, so nothing is counted twice. A row trigger whose
-- WHEN is false queues nothing: a claim pays one comparison per row.
--
-- Expand/contract: the previous release's code calls the same functions (their files are
-- re-applied after this one, in the same run, with their own counting); until then, and for
-- any writer without the setting, the row triggers count. CREATE OR REPLACE TRIGGER turns the
-- two statement triggers into row triggers under the same names (nothing dropped, so no
-- destructive marker), in this file's transaction: no statement is counted by both or neither.
-- `ALTER TABLE jobs DISABLE TRIGGER jobs_count_inserted` (the bench's counting off) still names
-- them. The statement triggers' functions stay until a later release.

CREATE OR REPLACE FUNCTION jobs_count_row_inserted() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  INSERT INTO job_counter_deltas (submitted, completed, failed)
  VALUES (1, (NEW.status = 'completed')::int, (NEW.status = 'failed')::int);
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION jobs_count_row_updated() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  INSERT INTO job_counter_deltas (completed, failed)
  VALUES ((NEW.status = 'completed')::int, (NEW.status = 'failed')::int);
  RETURN NULL;
END
$$;

DO $$
BEGIN
  EXECUTE format('ALTER FUNCTION jobs_count_row_inserted() SET search_path = %I, pg_temp', current_schema());
  EXECUTE format('ALTER FUNCTION jobs_count_row_updated() SET search_path = %I, pg_temp', current_schema());
END
$$;

CREATE OR REPLACE TRIGGER jobs_count_inserted AFTER INSERT ON jobs
  FOR EACH ROW
  WHEN (current_setting('dte.engine_counts', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION jobs_count_row_inserted();

CREATE OR REPLACE TRIGGER jobs_count_updated AFTER UPDATE OF status ON jobs
  FOR EACH ROW
  WHEN (NEW.status IN ('completed', 'failed') AND OLD.status IS DISTINCT FROM NEW.status
        AND current_setting('dte.engine_counts', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION jobs_count_row_updated();
