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

export interface ClaimRow {
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
/**
 * The advisory path reads this many candidates per wanted job. Eight claimers in flight can hold
 * 8 batches' worth of the head of the queue: at 4× a quarter of the claims came back short in
 * the concurrency test (52-66 of ~165); at 8×, with the lock and the status check made per
 * candidate as rows are pulled, 0-2 of ~110.
 */
export const ADVISORY_OVERFETCH = 8;

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
  'RETURNING j.id, j.queue, j.task_type, j.payload, j.attempts, j.max_attempts, j.lease_token, j.lease_seconds, j.priority, j.run_at';

/** UPDATE … RETURNING comes back in primary-key order: the batch is handed out in claim order. */
export const CLAIM_ORDER = 'priority DESC, run_at, id';

/**
 * The claim as CTEs ending in `claimed AS (UPDATE … RETURNING …)`, with its parameters ($1..$4).
 * Default path: FOR UPDATE SKIP LOCKED, so claimers never wait on each other. Advisory path:
 * a bounded, materialized candidate set (over-fetched so a race for the head still fills the
 * batch); each candidate, as it is pulled, gets a transaction-scoped try-lock and then its row
 * with SKIP LOCKED and a fresh status check, and only rows that pass count towards the limit.
 * A claim never waits on a row, so it cannot deadlock with a batched complete; nothing is held
 * after commit.
 */
export function claimCtes(o: ClaimOptions): { ctes: string; params: unknown[] } {
  const params: unknown[] = [o.workerId, o.limit, o.leaseSeconds];
  if (o.queues.length > 0) params.push(o.queues);
  const taken = o.advisoryLocks
    ? `candidates AS MATERIALIZED (
         SELECT j.id FROM jobs j
         WHERE ${candidateFilter(o.queues)}
         ORDER BY j.priority DESC, j.run_at, j.id
         LIMIT $2 * ${ADVISORY_OVERFETCH}
       ), taken AS (
         SELECT x.id FROM candidates c
         CROSS JOIN LATERAL (
           SELECT j.id FROM jobs j WHERE j.id = c.id AND j.status = 'queued' FOR UPDATE SKIP LOCKED
         ) x
         WHERE pg_try_advisory_xact_lock(${ADVISORY_NAMESPACE}, (c.id % 2147483647)::int)
         LIMIT $2
       )`
    : `taken AS (
         SELECT j.id FROM jobs j
         WHERE ${candidateFilter(o.queues)}
         ORDER BY j.priority DESC, j.run_at, j.id
         LIMIT $2
         FOR UPDATE SKIP LOCKED
       )`;
  return {
    ctes: `${taken}, claimed AS (UPDATE jobs j SET ${CLAIM_SET} WHERE j.id = ANY (ARRAY(SELECT id FROM taken)) ${RETURNING})`,
    params,
  };
}

export function toClaimedJob(r: ClaimRow): ClaimedJob {
  return {
    id: String(r.id),
    queue: r.queue,
    type: r.task_type,
    payload: r.payload,
    attempt: r.attempts,
    maxAttempts: r.max_attempts,
    leaseToken: String(r.lease_token),
    leaseSeconds: r.lease_seconds,
  };
}

/** Claims up to `limit` jobs in one statement (see claimCtes). */
export async function claimJobs(db: Queryable, o: ClaimOptions): Promise<ClaimedJob[]> {
  const { ctes, params } = claimCtes(o);
  const sql = `WITH ${ctes} SELECT * FROM claimed ORDER BY ${CLAIM_ORDER}`;
  const { rows } = await db.query<ClaimRow>(sql, params);
  return rows.map(toClaimedJob);
}
