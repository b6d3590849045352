import type { Queryable } from '../../functions/engine/queryable.ts';
import { sleep } from './harness.ts';
import type { History, Lease } from './history.ts';

/** The leases a worker was granted that its own history does not show ending (completed, failed, released). */
export function heldBy(history: History, worker: string): Lease[] {
  const ended = new Set<string>();
  const mark = (l: Lease) => ended.add(`${l[0]}@${l[1]}`);
  for (const e of history.events) {
    if (!('w' in e) || e.w !== worker) continue;
    if (e.op === 'complete') e.ok.forEach(mark);
    if (e.op === 'release') e.ok.forEach(mark);
    if (e.op === 'fail' && (e.outcome === 'queued' || e.outcome === 'failed')) mark(e.lease);
  }
  return history.events
    .flatMap((e) => (e.op === 'claim' && e.w === worker ? e.jobs : []))
    .filter((l) => !ended.has(`${l[0]}@${l[1]}`));
}

/** How many of these leases are still current (the job running under that very token). */
export async function stillHeld(db: Queryable, leases: Lease[]): Promise<number> {
  if (leases.length === 0) return 0;
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM jobs j
     JOIN jsonb_to_recordset($1::jsonb) AS x(id bigint, token bigint) ON j.id = x.id
     WHERE j.status = 'running' AND j.lease_token = x.token`,
    [JSON.stringify(leases.map(([id, token]) => ({ id, token })))],
  );
  return Number(rows[0]?.n ?? 0);
}

/** Milliseconds until none of the leases is held any more (throws after `timeoutMs`). */
export async function msUntilReleased(db: Queryable, leases: Lease[], timeoutMs = 30_000): Promise<number> {
  const t0 = Date.now();
  while ((await stillHeld(db, leases)) > 0) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`leases still held after ${timeoutMs} ms`);
    await sleep(100);
  }
  return Date.now() - t0;
}

/**
 * How many of these leases are still current but expired by the reaper's own predicate
 * (jobs_requeue_expired, migration 0009: `locked_at + lease_seconds < now()`, database time):
 * a reaper starting now would take every one of them.
 */
export async function expiredButHeld(db: Queryable, leases: Lease[]): Promise<number> {
  if (leases.length === 0) return 0;
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM jobs j
     JOIN jsonb_to_recordset($1::jsonb) AS x(id bigint, token bigint) ON j.id = x.id
     WHERE j.status = 'running' AND j.lease_token = x.token
       AND j.locked_at + make_interval(secs => j.lease_seconds) < now()`,
    [JSON.stringify(leases.map(([id, token]) => ({ id, token })))],
  );
  return Number(rows[0]?.n ?? 0);
}

/** Waits until every one of the leases is current and expired (throws after `timeoutMs`). */
export async function waitUntilExpired(db: Queryable, leases: Lease[], timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const expired = await expiredButHeld(db, leases);
    if (expired === leases.length) return;
    const held = await stillHeld(db, leases);
    if (held < leases.length)
      throw new Error(
        `${leases.length - held} of ${leases.length} leases ended while their holders were frozen`,
      );
    if (Date.now() - t0 > timeoutMs)
      throw new Error(
        `${leases.length - expired} of ${leases.length} leases not expired after ${timeoutMs} ms`,
      );
    await sleep(100);
  }
}
