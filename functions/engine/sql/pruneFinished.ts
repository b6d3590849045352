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
