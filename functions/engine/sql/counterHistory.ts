import type { Queryable } from '../queryable.ts';

export interface MinuteCounts {
  /** Start of the minute (database time). */
  minute: Date;
  submitted: number;
  completed: number;
  failed: number;
  recovered: number;
}

/**
 * The exact counters per minute over the last `minutes` minutes, oldest first, one row per
 * minute including empty ones (the current, partial minute last). Reads job_counter_deltas:
 * raw rows of the last two minutes and the per-minute rows compactCounters folds them into
 * (kept 48 h), so the sum per minute is the same before and after a compaction.
 */
export async function readCounterHistory(db: Queryable, minutes = 60): Promise<MinuteCounts[]> {
  const { rows } = await db.query<{
    minute: Date;
    submitted: string;
    completed: string;
    failed: string;
    recovered: string;
  }>(
    `WITH span AS (
       SELECT date_trunc('minute', now()) - make_interval(mins => $1::int - 1) AS first,
              date_trunc('minute', now()) AS last
     ), per_minute AS (
       SELECT date_trunc('minute', d.at) AS minute, sum(d.submitted) AS submitted,
              sum(d.completed) AS completed, sum(d.failed) AS failed, sum(d.recovered) AS recovered
       FROM job_counter_deltas d, span
       WHERE d.at >= span.first
       GROUP BY 1
     )
     SELECT m.minute, coalesce(p.submitted, 0) AS submitted, coalesce(p.completed, 0) AS completed,
            coalesce(p.failed, 0) AS failed, coalesce(p.recovered, 0) AS recovered
     FROM span, generate_series(span.first, span.last, interval '1 minute') AS m(minute)
     LEFT JOIN per_minute p ON p.minute = m.minute
     ORDER BY m.minute`,
    [minutes],
  );
  return rows.map((r) => ({
    minute: r.minute,
    submitted: Number(r.submitted),
    completed: Number(r.completed),
    failed: Number(r.failed),
    recovered: Number(r.recovered),
  }));
}
