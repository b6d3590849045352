import type { Queryable } from './queryable.ts';
import { readCounters, type Snapshot } from './sql/counters.ts';
import { type OldestTransaction, readOldestTransaction } from './sql/oldestTransaction.ts';
import { listQueueLimits, type QueueLimits } from './sql/queueLimits.ts';
import { type RunningAge, readRunningAges } from './sql/runningAges.ts';

/** A running job counts as stuck once its lease has gone this many lease lengths without renewal. */
export const STUCK_LEASE_MULTIPLE = 5;

/** What the ledger export reads from PostgreSQL: exact totals and gauges, never estimates. */
export interface LedgerInput {
  snapshot: Snapshot;
  /** Per-queue running ages (readRunningAges); queues missing here export 0. */
  runningAges?: readonly RunningAge[];
  /** Queues with a limit (listQueueLimits). */
  limits?: readonly QueueLimits[];
  /** Enabled schedules: the latest occurrence enqueued and the cursor (Unix seconds, null: none yet). */
  schedules?: ReadonlyArray<{ name: string; lastRunAt: number | null; nextAt: number | null }>;
  /** The oldest open transaction holding back the snapshot horizon (readOldestTransaction). */
  oldestTransaction?: OldestTransaction;
}

/** Reads the ledger (five short statements). The platform renders it as metrics. */
export async function readLedger(db: Queryable): Promise<Required<LedgerInput>> {
  const snapshot = await readCounters(db);
  const runningAges = await readRunningAges(db, STUCK_LEASE_MULTIPLE);
  const limits = await listQueueLimits(db);
  const { rows } = await db.query<{ name: string; last_run_at: number | null; next_at: number | null }>(
    `SELECT name, extract(epoch FROM last_run_at)::float8 AS last_run_at, extract(epoch FROM next_at)::float8 AS next_at
       FROM schedules WHERE enabled ORDER BY name`,
  );
  const schedules = rows.map((r) => ({ name: r.name, lastRunAt: r.last_run_at, nextAt: r.next_at }));
  const oldestTransaction = await readOldestTransaction(db);
  return { snapshot, runningAges, limits, schedules, oldestTransaction };
}
