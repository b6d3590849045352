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
 * without taking the same job twice. The statement is jobs_requeue_expired (migration 0009),
 * which runs as the owner: the reaper role may not update jobs or write the counters itself.
 */
export async function requeueExpiredLeases(db: Queryable, limit: number): Promise<RecoveryResult> {
  const { rows } = await db.query<{ requeued: string; failed: string }>(
    'SELECT o_requeued AS requeued, o_failed AS failed FROM jobs_requeue_expired($1)',
    [limit],
  );
  const requeued = Number(rows[0]?.requeued ?? 0);
  const failed = Number(rows[0]?.failed ?? 0);
  return { recovered: requeued + failed, requeued, failed };
}
