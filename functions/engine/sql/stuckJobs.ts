import type { Queryable } from '../queryable.ts';
import type { RequeueTarget } from './requeueJobs.ts';

export interface StuckFilter {
  /** Locked (or last heartbeat) longer ago than this; undefined: the lease itself has expired. */
  olderThanSeconds?: number | undefined;
  worker?: string | undefined;
  queue?: string | undefined;
  limit: number;
}

export interface StuckJob extends RequeueTarget {
  queue: string;
  type: string;
  lockedBy: string | null;
  lockedAt: Date;
  /** Seconds since locked_at (the claim, or the last heartbeat). */
  lockedForSeconds: number;
  leaseSeconds: number;
  attempts: number;
  maxAttempts: number;
}

/**
 * Running jobs whose worker looks gone: no heartbeat for `olderThanSeconds`, or past their lease.
 * Read without locks: the caller shows them, then releases each fenced by the token read here,
 * so a job whose worker finishes in between is skipped, not released.
 */
export async function findStuckJobs(db: Queryable, f: StuckFilter): Promise<StuckJob[]> {
  const { rows } = await db.query<{
    id: string;
    lease_token: string;
    queue: string;
    task_type: string;
    locked_by: string | null;
    locked_at: Date;
    age: number;
    lease_seconds: number;
    attempts: number;
    max_attempts: number;
  }>(
    `SELECT id, lease_token, queue, task_type, locked_by, locked_at,
            extract(epoch FROM now() - locked_at)::float8 AS age, lease_seconds, attempts, max_attempts
     FROM jobs
     WHERE status = 'running'
       AND CASE WHEN $1::float8 IS NULL THEN locked_at + make_interval(secs => lease_seconds) < now()
                ELSE locked_at <= now() - make_interval(secs => $1::float8) END
       AND ($2::text IS NULL OR locked_by = $2)
       AND ($3::text IS NULL OR queue = $3)
     ORDER BY locked_at, id
     LIMIT $4`,
    [f.olderThanSeconds ?? null, f.worker ?? null, f.queue ?? null, f.limit],
  );
  return rows.map((r) => ({
    id: String(r.id),
    status: 'running',
    leaseToken: String(r.lease_token),
    queue: r.queue,
    type: r.task_type,
    lockedBy: r.locked_by,
    lockedAt: r.locked_at,
    lockedForSeconds: Math.max(0, Number(r.age)),
    leaseSeconds: r.lease_seconds,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
  }));
}
