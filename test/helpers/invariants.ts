import { expect } from 'vitest';
import { readCounters } from '../../functions/engine/index.ts';
import type { Queryable } from '../../functions/engine/queryable.ts';

/**
 * Shared invariant checks, so every suite asserts "nothing lost, one terminal state, counters
 * exact" the same way instead of retyping it.
 */

export async function countByStatus(db: Queryable): Promise<Record<string, number>> {
  const { rows } = await db.query<{ status: string; n: string }>(
    'SELECT status, count(*) AS n FROM jobs GROUP BY status',
  );
  const out: Record<string, number> = { queued: 0, running: 0, completed: 0, failed: 0 };
  for (const r of rows) out[r.status] = Number(r.n);
  return out;
}

/**
 * The exact counters agree with the table: submitted = rows ever inserted (nothing pruned
 * here), running = rows running now. Completed/failed totals count transitions, so they equal
 * the rows only when no job left a terminal state; pass `terminalExact: false` otherwise.
 */
export async function expectCountersMatchTable(
  db: Queryable,
  opts: { terminalExact?: boolean } = {},
): Promise<void> {
  const byStatus = await countByStatus(db);
  const snap = await readCounters(db);
  const total = Object.values(byStatus).reduce((a, b) => a + b, 0);
  expect(snap.totals.submitted).toBe(total);
  expect(snap.running).toBe(byStatus.running);
  if (opts.terminalExact !== false) {
    expect(snap.totals.completed).toBe(byStatus.completed);
    expect(snap.totals.failed).toBe(byStatus.failed);
  }
}

/** Every job reached one terminal state and none is still queued or running. */
export async function expectAllTerminal(db: Queryable): Promise<void> {
  const byStatus = await countByStatus(db);
  expect(byStatus.queued).toBe(0);
  expect(byStatus.running).toBe(0);
}

/** Ages a running job's lease into the past (DB time), as graphile-worker's tests do. */
export async function expireLease(db: Queryable, id: string | 'all', by = '1 hour'): Promise<void> {
  if (id === 'all')
    await db.query(`UPDATE jobs SET locked_at = now() - $1::interval WHERE status = 'running'`, [by]);
  else await db.query('UPDATE jobs SET locked_at = now() - $2::interval WHERE id = $1', [id, by]);
}

/** One job's fencing state, as the model-based and concurrency suites compare it. */
export interface JobFence {
  status: string;
  attempts: number;
  maxAttempts: number;
  leaseToken: number;
}

/** Every job's (status, attempts, max_attempts, lease_token), keyed by id. */
export async function jobFences(db: Queryable): Promise<Map<string, JobFence>> {
  const { rows } = await db.query<{
    id: string;
    status: string;
    attempts: number;
    max_attempts: number;
    lease_token: string;
  }>('SELECT id, status, attempts, max_attempts, lease_token FROM jobs ORDER BY id');
  return new Map(
    rows.map((r) => [
      String(r.id),
      {
        status: r.status,
        attempts: r.attempts,
        maxAttempts: r.max_attempts,
        leaseToken: Number(r.lease_token),
      },
    ]),
  );
}

/** The whole row as text, to prove a fenced-out call changed nothing (not even updated_at). */
export async function rowSnapshot(db: Queryable, id: string): Promise<string | null> {
  const { rows } = await db.query<{ row: string }>('SELECT jobs::text AS row FROM jobs WHERE id = $1', [id]);
  return rows[0]?.row ?? null;
}

/**
 * No lease was handed out twice: every (id, lease token) a claim returned is distinct, and no
 * id was claimed twice under the same token. Returns how many times each id was claimed.
 */
export function expectLeasesUnique(
  claims: ReadonlyArray<{ id: string; leaseToken: string }>,
): Map<string, number> {
  const seen = new Set<string>();
  const perId = new Map<string, number>();
  const duplicates: string[] = [];
  for (const c of claims) {
    const key = `${c.id}@${c.leaseToken}`;
    if (seen.has(key)) duplicates.push(key);
    seen.add(key);
    perId.set(c.id, (perId.get(c.id) ?? 0) + 1);
  }
  expect(duplicates, 'leases handed out twice').toEqual([]);
  return perId;
}

/**
 * Advisory locks in the engine's namespace held by the backends with this application_name
 * (pg_locks is cluster-wide; other suites may be claiming at the same moment).
 */
export async function ourAdvisoryLocks(
  db: Queryable,
  namespace: number,
  applicationName: string,
): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.classid = $1::bigint::oid AND a.application_name = $2
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [namespace, applicationName],
  );
  return Number(rows[0]?.n ?? 0);
}

/** The per-queue gauges of readCounters agree with count(*) over the table. */
export async function expectGaugesMatchTable(db: Queryable): Promise<void> {
  const snap = await readCounters(db);
  const { rows } = await db.query<{ queue: string; ready: string; scheduled: string; running: string }>(
    `SELECT queue,
            count(*) FILTER (WHERE status = 'queued' AND run_at <= now()) AS ready,
            count(*) FILTER (WHERE status = 'queued' AND run_at > now()) AS scheduled,
            count(*) FILTER (WHERE status = 'running') AS running
     FROM jobs WHERE status IN ('queued', 'running') GROUP BY queue`,
  );
  const fromTable = Object.fromEntries(
    rows.map((r) => [
      r.queue,
      { ready: Number(r.ready), scheduled: Number(r.scheduled), running: Number(r.running) },
    ]),
  );
  const fromGauges = Object.fromEntries(
    snap.queues
      .filter((q) => q.ready + q.scheduled + q.running > 0)
      .map((q) => [q.queue, { ready: q.ready, scheduled: q.scheduled, running: q.running }]),
  );
  expect(fromGauges).toEqual(fromTable);
}
