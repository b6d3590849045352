import type { Queryable } from '../queryable.ts';
import type { Lease } from '../types.ts';
import { fencedBatch } from './fence.ts';

/**
 * Returns jobs to `queued` without consuming an attempt: the claim's +1 is taken back. Used
 * at the invocation deadline for jobs not started or aborted in time. Fenced; returns the ids released.
 */
export async function releaseJobs(
  db: Queryable,
  leases: readonly Lease[],
  reason: string,
): Promise<Set<string>> {
  if (leases.length === 0) return new Set();
  const { rows } = await db.query<{ id: string }>(
    `UPDATE jobs j SET status = 'queued', attempts = j.attempts - 1, locked_at = NULL, locked_by = NULL,
            updated_at = now(),
            last_error = jsonb_build_object('name', 'Released', 'message', $2::text, 'worker', j.locked_by, 'at', now())
     FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, token bigint)
     WHERE ${fencedBatch('j', 1)}
     RETURNING j.id`,
    [JSON.stringify(leases.map((l) => ({ id: l.id, token: l.leaseToken }))), reason],
  );
  return new Set(rows.map((r) => String(r.id)));
}
