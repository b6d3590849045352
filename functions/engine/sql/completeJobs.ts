import type { Queryable } from '../queryable.ts';
import type { Lease } from '../types.ts';

export interface Completion extends Lease {
  result?: unknown;
}

/** The fenced batch completion; `$param` is a jsonb array of {id, token, result}. */
export function completeSql(param: number): string {
  return `UPDATE jobs d
     SET status = 'completed', result = x.result, finished_at = now(), updated_at = now(), locked_at = NULL
     FROM jsonb_to_recordset($${param}::jsonb) AS x(id bigint, token bigint, result jsonb)
     WHERE d.id = x.id AND d.status = 'running' AND d.lease_token = x.token
     RETURNING d.id`;
}

export function completionsParam(completions: readonly Completion[]): string {
  return JSON.stringify(
    completions.map((c) => ({ id: c.id, token: c.leaseToken, result: c.result ?? null })),
  );
}

/**
 * Completes a batch in one statement, fenced per job by (status = 'running', lease_token).
 * Returns the ids that completed; any other id lost its lease and changed nothing.
 */
export async function completeJobs(db: Queryable, completions: readonly Completion[]): Promise<Set<string>> {
  if (completions.length === 0) return new Set();
  const { rows } = await db.query<{ id: string }>(completeSql(1), [completionsParam(completions)]);
  return new Set(rows.map((r) => String(r.id)));
}
