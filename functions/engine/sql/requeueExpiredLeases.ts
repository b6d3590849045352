import type { Queryable } from '../queryable.ts';

export interface RecoveryResult {
  /** Expired leases taken: requeued + failed. Equals what this call added to `recovered`. */
  recovered: number;
  requeued: number;
  /** Expired with attempts exhausted (a poison job that keeps killing its worker): ended `failed`. */
  failed: number;
}

/**
 * Takes up to `limit` running jobs whose lease expired (locked_at + lease_seconds < now()),
 * requeues them, or fails them when their attempts are used up, and adds the count to the
 * `recovered` counter in the same statement. SKIP LOCKED lets several reapers run at once
 * without taking the same job twice.
 */
export async function requeueExpiredLeases(db: Queryable, limit: number): Promise<RecoveryResult> {
  const { rows } = await db.query<{ requeued: string; failed: string }>(
    `WITH expired AS (
       SELECT id FROM jobs
       WHERE status = 'running' AND locked_at + make_interval(secs => lease_seconds) < now()
       ORDER BY locked_at
       LIMIT $1
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
       WHERE j.id = ANY (ARRAY(SELECT id FROM expired))
       RETURNING j.status
     ), counted AS (
       INSERT INTO job_counter_deltas (recovered)
       SELECT count(*) FROM taken HAVING count(*) > 0
     )
     SELECT count(*) FILTER (WHERE status = 'queued') AS requeued,
            count(*) FILTER (WHERE status = 'failed') AS failed
     FROM taken`,
    [limit],
  );
  const requeued = Number(rows[0]?.requeued ?? 0);
  const failed = Number(rows[0]?.failed ?? 0);
  return { recovered: requeued + failed, requeued, failed };
}
