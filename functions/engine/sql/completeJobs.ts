import type { Queryable } from '../queryable.ts';
import type { Lease } from '../types.ts';

export interface Completion extends Lease {
  result?: unknown;
}

/**
 * Completes a batch in one statement, fenced per job by (status = 'running', lease_token).
 * Returns the ids that completed; any other id lost its lease and changed nothing.
 */
export async function completeJobs(db: Queryable, completions: readonly Completion[]): Promise<Set<string>> {
  if (completions.length === 0) return new Set();
  const { rows } = await db.query<{ id: string }>(
    `UPDATE jobs j
     SET status = 'completed', result = x.result, finished_at = now(), updated_at = now(), locked_at = NULL
     FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, token bigint, result jsonb)
     WHERE j.id = x.id AND j.status = 'running' AND j.lease_token = x.token
     RETURNING j.id`,
    [JSON.stringify(completions.map((c) => ({ id: c.id, token: c.leaseToken, result: c.result ?? null })))],
  );
  return new Set(rows.map((r) => String(r.id)));
}
