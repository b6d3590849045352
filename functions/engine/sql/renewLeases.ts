import type { Queryable } from '../queryable.ts';
import type { Lease } from '../types.ts';
import { fencedBatch } from './fence.ts';

/** Heartbeat: renews locked_at for the leases still held. Returns the ids renewed; the rest were lost. */
export async function renewLeases(db: Queryable, leases: readonly Lease[]): Promise<Set<string>> {
  if (leases.length === 0) return new Set();
  const { rows } = await db.query<{ id: string }>(
    `UPDATE jobs j SET locked_at = now(), updated_at = now()
     FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, token bigint)
     WHERE ${fencedBatch('j', 1)}
     RETURNING j.id`,
    [JSON.stringify(leases.map((l) => ({ id: l.id, token: l.leaseToken })))],
  );
  return new Set(rows.map((r) => String(r.id)));
}
