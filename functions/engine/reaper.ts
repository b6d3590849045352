import type { EngineLogger } from './consumer.ts';
import type { Db } from './queryable.ts';
import {
  dueOccurrences,
  type MaterialiseOptions,
  type MaterialiseSummary,
  materialiseSchedules,
} from './schedules.ts';
import { compactCounters } from './sql/counters.ts';
import { ensureFinishedPartitions, pruneFinished } from './sql/pruneFinished.ts';
import { requeueExpiredLeases } from './sql/requeueExpiredLeases.ts';
import type { Enqueued, WakeOutcome } from './wake.ts';

export interface ReaperSettings {
  retentionDays: number;
  /** Leases taken per statement (default 1,000). 5,000 was tried: 100,000 expired leases took 3.3-5.1 s against 3.4-3.9 s, so the statement count is not what bounds the reaper. */
  batchSize?: number;
  pruneBatchSize?: number;
  /** The schedule materialiser's clock and look-ahead (tests inject the clock). */
  schedules?: MaterialiseOptions;
  /**
   * Materialised occurrences due within this of now are handed to the waker (default 60 s, the
   * reaper's period; the waker keeps those within its own horizon, CONSUMER_DELAY_STAY_MS).
   */
  wakeWindowMs?: number;
}

export interface ReaperSummary {
  recovered: number;
  requeued: number;
  failed: number;
  pruned: number;
  /** Finished-job partitions made ahead this run (a week ahead is kept; -1: the attempt failed and was logged). */
  partitionsMade: number;
  compacted: number;
  /** The schedule materialiser's pass (runs first: an occurrence must not wait for a long requeue). */
  schedules: MaterialiseSummary;
  /** What waking a consumer for the occurrences due in the coming minute came to (none: no waker). */
  wake?: WakeOutcome;
  /** Stopped for lack of time with work left; the next run continues. */
  truncated: boolean;
  durationMs: number;
}

/**
 * One reaper run: requeue (or fail, when attempts are exhausted) expired leases in bounded
 * batches until none are left or time runs short, prune finished jobs past retention, and
 * compact the counter deltas. First, the schedules' next occurrences are enqueued
 * (materialiseSchedules: exactly once per occurrence however many reapers run), and a consumer
 * is woken for those falling due before the next run (`wake`: the api's waker, so the same
 * debounce and presence check; the woken consumer stays until they are due and claims them at
 * their run_at).
 */
export async function runReaper(
  deps: {
    db: Db;
    logger: EngineLogger;
    settings: ReaperSettings;
    /** createWaker's waker (absent: no consumer to invoke, the consumer's schedule is the floor). */
    wake?: (jobs: readonly Enqueued[]) => Promise<WakeOutcome>;
  },
  remainingMs: () => number,
): Promise<ReaperSummary> {
  const { db, settings } = deps;
  const started = Date.now();
  const batch = settings.batchSize ?? 1000;
  const pruneBatch = settings.pruneBatchSize ?? 5000;
  // Keep a fifth of the time (at most 2 s) for the metrics export after the loops.
  const reserve = Math.min(2000, remainingMs() * 0.2);
  const summary: ReaperSummary = {
    recovered: 0,
    requeued: 0,
    failed: 0,
    pruned: 0,
    partitionsMade: 0,
    compacted: 0,
    schedules: { schedules: 0, enqueued: 0, raced: 0, failed: 0 },
    truncated: false,
    durationMs: 0,
  };
  summary.schedules = await materialiseSchedules(db, settings.schedules, (name, err) =>
    deps.logger.warn('schedule not materialised', { schedule: name, error: err as Error }),
  );
  if (deps.wake) summary.wake = await wakeForOccurrences(deps, deps.wake);
  for (;;) {
    if (remainingMs() < reserve) {
      summary.truncated = true;
      break;
    }
    const r = await requeueExpiredLeases(db, batch);
    summary.recovered += r.recovered;
    summary.requeued += r.requeued;
    summary.failed += r.failed;
    if (r.recovered < batch) break;
  }
  for (;;) {
    if (remainingMs() < reserve) {
      summary.truncated = true;
      break;
    }
    const n = await pruneFinished(db, settings.retentionDays, pruneBatch);
    summary.pruned += n;
    if (n < pruneBatch) break;
  }
  summary.partitionsMade = await ensurePartitions(deps);
  summary.compacted = await compactCounters(db);
  summary.durationMs = Date.now() - started;
  const idle =
    summary.recovered +
      summary.pruned +
      summary.compacted +
      summary.schedules.enqueued +
      summary.partitionsMade ===
    0;
  if (idle) deps.logger.debug('reaper run', { ...summary });
  else deps.logger.info('reaper run', { ...summary });
  return summary;
}

/**
 * Keeps a week of finished-job partitions ahead. A failure (a lock not granted within the
 * function's lock_timeout, say) is logged and retried next run: days ahead of need, and a
 * completion on a day without a partition lands in the default one.
 */
async function ensurePartitions(deps: { db: Db; logger: EngineLogger }): Promise<number> {
  try {
    return await ensureFinishedPartitions(deps.db, 7);
  } catch (err) {
    deps.logger.warn('finished-job partitions not made; the next run tries again', { error: err as Error });
    return -1;
  }
}

/** Hands the occurrences due before the next run to the waker; a failed read is logged, never the run's failure. */
async function wakeForOccurrences(
  deps: { db: Db; logger: EngineLogger; settings: ReaperSettings },
  wake: (jobs: readonly Enqueued[]) => Promise<WakeOutcome>,
): Promise<WakeOutcome> {
  const now = (deps.settings.schedules?.now ?? (() => new Date()))();
  let due: Enqueued[];
  try {
    due = await dueOccurrences(deps.db, now, deps.settings.wakeWindowMs ?? 60_000);
  } catch (err) {
    deps.logger.warn('schedule wake check failed; the schedule will start a consumer', {
      error: err as Error,
    });
    return 'check_failed';
  }
  return wake(due);
}
