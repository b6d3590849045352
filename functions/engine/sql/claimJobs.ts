import type { Queryable } from '../queryable.ts';
import type { ClaimedJob } from '../types.ts';

export interface ClaimOptions {
  workerId: string;
  limit: number;
  leaseSeconds: number;
  /** Empty: every queue. */
  queues: readonly string[];
  advisoryLocks?: boolean;
}

interface ClaimRow {
  id: string;
  queue: string;
  task_type: string;
  payload: unknown;
  attempts: number;
  max_attempts: number;
  lease_token: string;
  lease_seconds: number;
}

/** Advisory lock namespace (first key of the two-key form), so our keys never meet an app's own. */
export const ADVISORY_NAMESPACE = 0x7a5e_0001;
/** The advisory path reads this many candidates per wanted job: with 8 claimers racing for the same head of the queue, 4× kept batches full in the concurrency test. */
export const ADVISORY_OVERFETCH = 4;

// `queue = ANY($4)` only when QUEUES names queues, so the all-queues claim walks jobs_claim_idx
// in order instead of sorting the backlog.
function candidateFilter(queues: readonly string[]): string {
  return `j.status = 'queued' AND j.run_at <= now()
      ${queues.length > 0 ? 'AND j.queue = ANY($4::text[])' : ''}
      AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = j.queue AND q.paused)`;
}

const CLAIM_SET = `
  status = 'running',
  attempts = j.attempts + 1,
  -- A job requeued by hand with its attempts used up gets one more (the CHECK would refuse the claim).
  max_attempts = greatest(j.max_attempts, j.attempts + 1),
  lease_token = j.lease_token + 1,
  locked_at = now(),
  locked_by = $1,
  lease_seconds = $3,
  started_at = now(),
  updated_at = now()`;

const RETURNING =
  'RETURNING j.id, j.queue, j.task_type, j.payload, j.attempts, j.max_attempts, j.lease_token, j.lease_seconds';

/**
 * Claims up to `limit` jobs in one statement. Default path: FOR UPDATE SKIP LOCKED, so
 * claimers never wait on each other. Advisory path: transaction-scoped try-locks over a
 * bounded, materialized candidate set (over-fetched so a race for the head still fills the
 * batch), then the rows are taken in id order with SKIP LOCKED: a claim never waits on a row,
 * so it cannot deadlock with a batched complete. Nothing is held after commit.
 */
export async function claimJobs(db: Queryable, o: ClaimOptions): Promise<ClaimedJob[]> {
  const params: unknown[] = [o.workerId, o.limit, o.leaseSeconds];
  if (o.queues.length > 0) params.push(o.queues);
  const sql = o.advisoryLocks
    ? `WITH candidates AS MATERIALIZED (
         SELECT j.id FROM jobs j
         WHERE ${candidateFilter(o.queues)}
         ORDER BY j.priority DESC, j.run_at, j.id
         LIMIT $2 * ${ADVISORY_OVERFETCH}
       ), locked AS MATERIALIZED (
         SELECT c.id FROM candidates c
         WHERE pg_try_advisory_xact_lock(${ADVISORY_NAMESPACE}, (c.id % 2147483647)::int)
         LIMIT $2
       ), taken AS (
         SELECT j.id FROM jobs j JOIN locked l ON l.id = j.id
         WHERE j.status = 'queued'
         ORDER BY j.id
         FOR UPDATE OF j SKIP LOCKED
       )
       UPDATE jobs j SET ${CLAIM_SET} FROM taken t WHERE j.id = t.id ${RETURNING}`
    : `WITH taken AS (
         SELECT j.id FROM jobs j
         WHERE ${candidateFilter(o.queues)}
         ORDER BY j.priority DESC, j.run_at, j.id
         LIMIT $2
         FOR UPDATE SKIP LOCKED
       )
       UPDATE jobs j SET ${CLAIM_SET} FROM taken t WHERE j.id = t.id ${RETURNING}`;
  const { rows } = await db.query<ClaimRow>(sql, params);
  return rows.map((r) => ({
    id: String(r.id),
    queue: r.queue,
    type: r.task_type,
    payload: r.payload,
    attempt: r.attempts,
    maxAttempts: r.max_attempts,
    leaseToken: String(r.lease_token),
    leaseSeconds: r.lease_seconds,
  }));
}
