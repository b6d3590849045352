-- The idempotency keys' table, job_keys (migration 0022), follows the jobs that hold its keys:
-- a job deleted by hand (the runbook's DELETE, a TRUNCATE) frees its key, as the unique index on
-- `jobs` freed it before 0022. The engine's own deletions keep theirs (a completion of a queue
-- whose retention is 'delete' keeps the key answerable for the retention period; the reaper
-- prunes keys past it); a row an UPDATE moved to another partition is still there and keeps it.
--
-- Source of truth for these functions (migrations/README.md, "Function files").

CREATE OR REPLACE FUNCTION jobs_keys_deleted()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = OLD.id) THEN
    DELETE FROM job_keys k WHERE k.idempotency_key = OLD.idempotency_key AND k.job_id = OLD.id;
  END IF;
  RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION jobs_keys_truncated()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO :"schema", pg_temp
AS $function$
BEGIN
  DELETE FROM job_keys k WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = k.job_id);
  RETURN NULL;
END
$function$;
