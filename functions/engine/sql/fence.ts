import type { Lease } from '../types.ts';

/**
 * The fence for a batch of leases sent as one jsonb array of `{id, token, …}` in `$param` and
 * read as the recordset `x`: a row changes only while it is still `running` under the token
 * its worker claimed it with. The consumer's batch statements (jobs_complete, jobs_renew,
 * jobs_release in migrations 0006 and 0008) write the same fence in SQL; this text form is
 * for statements sent by the owner.
 *
 * Two details keep the plan on the primary key, one index probe per lease:
 * - the ids are also given as an array (`id = ANY (…)`). Joined to the recordset alone, the
 *   row estimate of a set-returning function (100) made the planner hash the whole table: a
 *   sequential scan per statement, 9.6 ms of a 15.5 ms 500-job claim on a 20,000-row table and
 *   growing with it;
 * - the status test is written `(status = 'running') IS TRUE` (the column is NOT NULL, so it
 *   means the same): the planner cannot prove that implies `jobs_running_idx`'s
 *   predicate, so it does not walk every running row of every consumer and filter them
 *   against the array, which it chose whenever the last ANALYZE saw few running rows.
 */
export function fencedBatch(alias: string, param: number): string {
  return `${alias}.id = ANY (ARRAY(SELECT (e ->> 'id')::bigint FROM jsonb_array_elements($${param}::jsonb) e))
       AND ${alias}.id = x.id AND (${alias}.status = 'running') IS TRUE AND ${alias}.lease_token = x.token`;
}

const DIGITS = /^\d{1,19}$/;

/**
 * The jsonb array of `{id, token}` (and `deadline: true` where set) that the fenced batch
 * functions take, written directly: ids and tokens are bigint decimal strings, checked to be
 * digits only, so they go in as JSON numbers.
 */
export function leasesParam(leases: ReadonlyArray<Lease & { deadline?: boolean }>): string {
  let out = '[';
  for (let i = 0; i < leases.length; i++) {
    const l = leases[i]!;
    if (!DIGITS.test(l.id) || !DIGITS.test(l.leaseToken))
      throw new TypeError(`bad lease ${l.id}/${l.leaseToken}`);
    out += `${i > 0 ? ',' : ''}{"id":${l.id},"token":${l.leaseToken}${l.deadline ? ',"deadline":true' : ''}}`;
  }
  return `${out}]`;
}
