import type { Queryable } from '../queryable.ts';

/**
 * Deletes up to `limit` completed or failed jobs finished more than `olderThanDays` ago.
 * Counters are cumulative deltas, so pruning never lowers a total. Runs jobs_prune_finished
 * (migration 0009): the reaper role may not delete jobs itself, so it can never delete a live one.
 */
export async function pruneFinished(db: Queryable, olderThanDays: number, limit: number): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT jobs_prune_finished($1, $2) AS n', [
    olderThanDays,
    limit,
  ]);
  return Number(rows[0]?.n ?? 0);
}

/**
 * Makes the finished-job partitions of today and the next `daysAhead` UTC days that do not exist
 * yet (jobs_partitions_ensure, migration 0022); returns how many it made. A completion on a day
 * without one lands in the default partition (nothing is refused), which this moves out.
 */
export async function ensureFinishedPartitions(db: Queryable, daysAhead: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT jobs_partitions_ensure($1) AS n', [daysAhead]);
  return Number(rows[0]?.n ?? 0);
}
