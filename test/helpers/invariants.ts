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
