import type { Queryable } from '../queryable.ts';
import type { Lease } from '../types.ts';
import { leasesParam } from './fence.ts';
import { retryOnSerializationFailure } from './serializationRetry.ts';

/**
 * Heartbeat: renews locked_at for the leases still held (`jobs_renew` of migration 0008, fenced
 * as fence.ts describes). Returns the ids renewed; the rest were lost.
 */
export async function renewLeases(db: Queryable, leases: readonly Lease[]): Promise<Set<string>> {
  if (leases.length === 0) return new Set();
  const { rows } = await retryOnSerializationFailure(() =>
    db.query<{ id: string }>('SELECT id FROM jobs_renew($1)', [leasesParam(leases)]),
  );
  return new Set(rows.map((r) => String(r.id)));
}
