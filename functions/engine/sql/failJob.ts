import type { Queryable } from '../queryable.ts';
import type { JobStatus, Lease } from '../types.ts';

export interface Failure extends Lease {
  error: { message: string; name: string; stack?: string | undefined; attempt: number; worker: string };
  /** NonRetryableError: end `failed` whatever attempts remain. */
  permanent: boolean;
  backoffBaseSeconds: number;
  maxBackoffSeconds: number;
}

export interface FailOutcome {
  status: JobStatus;
  runAt: Date;
  attempts: number;
}

/**
 * Records a failed attempt, fenced. Retryable with attempts left: back to `queued` after an
 * exponential backoff computed in SQL, base·2^(attempt-1) capped at the maximum, with equal
 * jitter (half fixed, half random) and never below the base. Otherwise `failed`.
 * Returns null when the lease was lost.
 */
export async function failJob(db: Queryable, f: Failure): Promise<FailOutcome | null> {
  const { rows } = await db.query<{ status: JobStatus; run_at: Date; attempts: number }>(
    `WITH decision AS (
       SELECT id, ($3::boolean OR attempts >= max_attempts) AS final,
              least($5::float8, $4::float8 * power(2, greatest(attempts - 1, 0))) AS cap
       FROM jobs WHERE id = $1 AND status = 'running' AND lease_token = $2
     )
     UPDATE jobs j SET
       status = CASE WHEN d.final THEN 'failed' ELSE 'queued' END,
       run_at = CASE WHEN d.final THEN j.run_at
                ELSE now() + make_interval(secs => greatest($4::float8, d.cap / 2 + random() * d.cap / 2)) END,
       finished_at = CASE WHEN d.final THEN now() END,
       last_error = $6::jsonb,
       locked_at = NULL,
       locked_by = CASE WHEN d.final THEN j.locked_by END,
       updated_at = now()
     FROM decision d
     WHERE j.id = d.id AND j.status = 'running' AND j.lease_token = $2
     RETURNING j.status, j.run_at, j.attempts`,
    [f.id, f.leaseToken, f.permanent, f.backoffBaseSeconds, f.maxBackoffSeconds, JSON.stringify(f.error)],
  );
  const row = rows[0];
  return row ? { status: row.status, runAt: row.run_at, attempts: row.attempts } : null;
}
