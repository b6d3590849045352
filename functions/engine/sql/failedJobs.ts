import type { Queryable } from '../queryable.ts';
import type { RequeueTarget } from './requeueJobs.ts';

export interface FailedFilter {
  /** Failed within this many seconds; undefined: any time. */
  sinceSeconds?: number | undefined;
  type?: string | undefined;
  queue?: string | undefined;
  /** Cancelled jobs are failed too, but were stopped on purpose: left out unless asked for. */
  includeCancelled?: boolean | undefined;
  limit: number;
}

export interface FailedJob extends RequeueTarget {
  queue: string;
  type: string;
  attempts: number;
  maxAttempts: number;
  finishedAt: Date | null;
  lastError: unknown;
}

/**
 * The dead letters: failed jobs, newest first, to show before a redrive. The redrive itself is
 * requeueJobs with resetAttempts, fenced on (status 'failed', lease_token) as read here.
 */
export async function findFailedJobs(db: Queryable, f: FailedFilter): Promise<FailedJob[]> {
  const { rows } = await db.query<{
    id: string;
    lease_token: string;
    queue: string;
    task_type: string;
    attempts: number;
    max_attempts: number;
    finished_at: Date | null;
    last_error: unknown;
  }>(
    `SELECT id, lease_token, queue, task_type, attempts, max_attempts, finished_at, last_error
     FROM jobs
     WHERE status = 'failed'
       AND ($1::float8 IS NULL OR coalesce(finished_at, updated_at) >= now() - make_interval(secs => $1::float8))
       AND ($2::text IS NULL OR task_type = $2)
       AND ($3::text IS NULL OR queue = $3)
       AND ($5::boolean OR last_error IS NULL OR last_error->>'name' IS DISTINCT FROM 'Cancelled')
     ORDER BY coalesce(finished_at, updated_at) DESC, id DESC
     LIMIT $4`,
    [f.sinceSeconds ?? null, f.type ?? null, f.queue ?? null, f.limit, f.includeCancelled ?? false],
  );
  return rows.map((r) => ({
    id: String(r.id),
    status: 'failed',
    leaseToken: String(r.lease_token),
    queue: r.queue,
    type: r.task_type,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    finishedAt: r.finished_at,
    lastError: r.last_error,
  }));
}
