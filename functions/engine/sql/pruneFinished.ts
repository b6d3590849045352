import type { Queryable } from '../queryable.ts';

/**
 * Deletes up to `limit` completed or failed jobs finished more than `olderThanDays` ago.
 * Counters are cumulative deltas, so pruning never lowers a total.
 */
export async function pruneFinished(db: Queryable, olderThanDays: number, limit: number): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM jobs WHERE id IN (
       SELECT id FROM jobs
       WHERE status IN ('completed', 'failed')
         AND coalesce(finished_at, updated_at) < now() - make_interval(secs => $1::float8 * 86400)
       LIMIT $2)`,
    [olderThanDays, limit],
  );
  return rowCount ?? 0;
}
