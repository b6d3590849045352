import type { Queryable } from '../queryable.ts';
import { JOB_COLUMNS, type JobRow } from '../types.ts';

export interface EnqueueRow {
  queue: string;
  type: string;
  payload: unknown;
  priority: number;
  /** ISO timestamp; when null, now() + delay (database time). */
  run_at: string | null;
  delay: number;
  max_attempts: number;
  key: string | null;
  hash: string | null;
}

/**
 * One INSERT for the whole batch: the rows travel as one jsonb document. Rows whose
 * idempotency key exists already are skipped (ON CONFLICT DO NOTHING) and resolved by the
 * caller. Keyed rows are inserted in key order: a batch waits on a key another uncommitted
 * batch holds, so batches taking the same keys in different orders deadlocked (40P01 in 3 of
 * 5 runs of idempotency.test.ts: 50 concurrent batches of 40 rotated keys; 0 of 10 sorted).
 * Unkeyed rows keep the input order, so they sort back by id; keyed rows are matched by key.
 */
export async function enqueueJobs(db: Queryable, rows: EnqueueRow[]): Promise<JobRow[]> {
  const { rows: inserted } = await db.query<JobRow>(
    `INSERT INTO jobs (queue, task_type, payload, priority, run_at, max_attempts, idempotency_key, request_hash)
     SELECT x.queue, x.type, coalesce(x.payload, 'null'::jsonb), x.priority,
            coalesce(x.run_at, now() + make_interval(secs => x.delay)),
            x.max_attempts, x.key, x.hash
     FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (queue text, type text, payload jsonb, priority int,
          run_at timestamptz, delay float8, max_attempts int, key text, hash text))
          WITH ORDINALITY AS x(queue, type, payload, priority, run_at, delay, max_attempts, key, hash, ord)
     ORDER BY x.key, x.ord
     ON CONFLICT (idempotency_key) DO NOTHING
     RETURNING ${JOB_COLUMNS}, request_hash`,
    [JSON.stringify(rows)],
  );
  return inserted;
}

/** The existing jobs for idempotency keys, with the hash of the request that created each. */
export async function findJobsByIdempotencyKeys(
  db: Queryable,
  keys: string[],
): Promise<Array<JobRow & { request_hash: string | null }>> {
  const { rows } = await db.query<JobRow & { request_hash: string | null }>(
    `SELECT ${JOB_COLUMNS}, request_hash FROM jobs WHERE idempotency_key = ANY($1::text[])`,
    [keys],
  );
  return rows;
}
