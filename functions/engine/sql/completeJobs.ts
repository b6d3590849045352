import type { Queryable } from '../queryable.ts';
import type { Lease } from '../types.ts';
import { fencedBatch } from './fence.ts';

export interface Completion extends Lease {
  result?: unknown;
}

/** The fenced batch completion; `$param` is a jsonb array of {id, token, result}. */
export function completeSql(param: number): string {
  return `UPDATE jobs d
     SET status = 'completed', result = x.result, finished_at = now(), updated_at = now(), locked_at = NULL
     FROM jsonb_to_recordset($${param}::jsonb) AS x(id bigint, token bigint, result jsonb)
     WHERE ${fencedBatch('d', param)}
     RETURNING d.id`;
}

/**
 * The jsonb array of {id, token, result}, written directly: ids and tokens are bigint decimal
 * strings (digits only), so they go in as JSON numbers without an object per completion.
 */
export function completionsParam(completions: readonly Completion[]): string {
  let out = '[';
  for (let i = 0; i < completions.length; i++) {
    const c = completions[i]!;
    if (!DIGITS.test(c.id) || !DIGITS.test(c.leaseToken))
      throw new TypeError(`bad lease ${c.id}/${c.leaseToken}`);
    out += `${i > 0 ? ',' : ''}{"id":${c.id},"token":${c.leaseToken},"result":${JSON.stringify(c.result ?? null) ?? 'null'}}`;
  }
  return `${out}]`;
}
const DIGITS = /^\d{1,19}$/;

/**
 * Completes a batch in one statement, fenced per job by (status = 'running', lease_token).
 * Returns the ids that completed; any other id lost its lease and changed nothing.
 */
export async function completeJobs(db: Queryable, completions: readonly Completion[]): Promise<Set<string>> {
  if (completions.length === 0) return new Set();
  const { rows } = await db.query<{ id: string }>(completeSql(1), [completionsParam(completions)]);
  return new Set(rows.map((r) => String(r.id)));
}
