import type { Queryable } from '../queryable.ts';

export interface CounterTotals {
  submitted: number;
  completed: number;
  failed: number;
  recovered: number;
}

export interface QueueGauge {
  queue: string;
  /** Queued jobs whose run_at has come. */
  ready: number;
  /** Queued jobs scheduled for later. */
  scheduled: number;
  running: number;
  /** Seconds the oldest ready job has waited since its run_at; 0 when none. */
  oldestReadyAgeSeconds: number;
  paused: boolean;
}

export interface Snapshot {
  totals: CounterTotals;
  running: number;
  queues: QueueGauge[];
  at: Date;
}

/** The exact totals and the gauges, read in one statement (one snapshot). */
export async function readCounters(db: Queryable): Promise<Snapshot> {
  const { rows } = await db.query<{
    totals: Record<string, string>;
    queues: Array<Record<string, unknown>> | null;
    at: Date;
  }>(
    `SELECT
       (SELECT jsonb_build_object(
          'submitted', coalesce(sum(submitted), 0), 'completed', coalesce(sum(completed), 0),
          'failed', coalesce(sum(failed), 0), 'recovered', coalesce(sum(recovered), 0))
        FROM job_counter_deltas) AS totals,
       (SELECT jsonb_agg(q ORDER BY q.queue) FROM (
          SELECT coalesce(s.queue, c.name) AS queue,
                 coalesce(s.ready, 0) AS ready, coalesce(s.scheduled, 0) AS scheduled,
                 coalesce(s.running, 0) AS running, coalesce(s.oldest, 0) AS oldest,
                 coalesce(c.paused, false) AS paused
          FROM (
            SELECT queue,
                   count(*) FILTER (WHERE status = 'queued' AND run_at <= now()) AS ready,
                   count(*) FILTER (WHERE status = 'queued' AND run_at > now()) AS scheduled,
                   count(*) FILTER (WHERE status = 'running') AS running,
                   extract(epoch FROM now() - min(run_at) FILTER (WHERE status = 'queued' AND run_at <= now())) AS oldest
            FROM jobs WHERE status IN ('queued', 'running') GROUP BY queue
          ) s FULL JOIN queues c ON c.name = s.queue
       ) q) AS queues,
       now() AS at`,
  );
  const row = rows[0]!;
  const queues: QueueGauge[] = (row.queues ?? []).map((q) => ({
    queue: String(q.queue),
    ready: Number(q.ready),
    scheduled: Number(q.scheduled),
    running: Number(q.running),
    oldestReadyAgeSeconds: Math.max(0, Number(q.oldest)),
    paused: Boolean(q.paused),
  }));
  return {
    totals: {
      submitted: Number(row.totals.submitted),
      completed: Number(row.totals.completed),
      failed: Number(row.totals.failed),
      recovered: Number(row.totals.recovered),
    },
    running: queues.reduce((n, q) => n + q.running, 0),
    queues,
    at: row.at,
  };
}

/**
 * Folds delta rows older than `olderThanSeconds` into one row per minute (per-minute history
 * stays readable), and minute rows older than `historyHours` into one base row. The DELETE and
 * INSERT are one statement, so every reader sees the same totals before and after. Runs
 * job_counters_compact (migration 0009): no runtime role may write the deltas itself.
 */
export async function compactCounters(
  db: Queryable,
  olderThanSeconds = 120,
  historyHours = 48,
): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT job_counters_compact($1, $2) AS n', [
    olderThanSeconds,
    historyHours,
  ]);
  return Number(rows[0]?.n ?? 0);
}
