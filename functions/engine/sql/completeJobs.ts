import type { Queryable } from '../queryable.ts';
import type { Lease } from '../types.ts';

export interface Completion extends Lease {
  result?: unknown;
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
 * Completes a batch in one statement, fenced per job by (status = 'running', lease_token):
 * `jobs_complete` of migration 0006 (a PL/pgSQL function, so its plan is cached).
 * Returns the ids that completed; any other id lost its lease and changed nothing.
 */
export async function completeJobs(db: Queryable, completions: readonly Completion[]): Promise<Set<string>> {
  if (completions.length === 0) return new Set();
  const { rows } = await db.query<{ ids: string | null }>('SELECT jobs_complete($1) AS ids', [
    completionsParam(completions),
  ]);
  const ids = rows[0]!.ids;
  return new Set(ids ? ids.split(',') : []);
}
