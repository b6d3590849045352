import type { Queryable } from '../queryable.ts';
import type { JobStatus } from '../types.ts';

export interface QueueStatusCounts {
  queue: string;
  counts: Record<JobStatus, number>;
  /** Seconds the oldest queued job whose run_at has come has waited; 0 when none. */
  oldestQueuedAgeSeconds: number;
}

/**
 * Counts per (queue, status) over the whole table. A full scan: fine for an operator command on
 * a table pruned to RETENTION_DAYS; the runtime never calls it.
 */
export async function countJobsByQueue(db: Queryable): Promise<QueueStatusCounts[]> {
  const { rows } = await db.query<{
    queue: string;
    queued: string;
    running: string;
    completed: string;
    failed: string;
    oldest: number | null;
  }>(
    `SELECT queue,
            count(*) FILTER (WHERE status = 'queued') AS queued,
            count(*) FILTER (WHERE status = 'running') AS running,
            count(*) FILTER (WHERE status = 'completed') AS completed,
            count(*) FILTER (WHERE status = 'failed') AS failed,
            extract(epoch FROM now() - min(run_at) FILTER (WHERE status = 'queued' AND run_at <= now()))::float8 AS oldest
     FROM jobs GROUP BY queue ORDER BY queue`,
  );
  return rows.map((r) => ({
    queue: r.queue,
    counts: {
      queued: Number(r.queued),
      running: Number(r.running),
      completed: Number(r.completed),
      failed: Number(r.failed),
    },
    oldestQueuedAgeSeconds: Math.max(0, Number(r.oldest ?? 0)),
  }));
}

export interface FailureRatio {
  windowSeconds: number;
  completed: number;
  failed: number;
  /** failed / (completed + failed); null when nothing finished in the window. */
  ratio: number | null;
}

/**
 * Terminal outcomes in the last `windowSeconds`, from the exact counter deltas (they also count
 * changes made by hand-written SQL). The reaper folds rows older than 2 minutes into per-minute
 * rows, so the window's far edge is accurate to a minute.
 */
export async function failureRatio(db: Queryable, windowSeconds = 300): Promise<FailureRatio> {
  const { rows } = await db.query<{ completed: string; failed: string }>(
    `SELECT coalesce(sum(completed), 0) AS completed, coalesce(sum(failed), 0) AS failed
     FROM job_counter_deltas WHERE at >= now() - make_interval(secs => $1::float8)`,
    [windowSeconds],
  );
  const completed = Number(rows[0]?.completed ?? 0);
  const failed = Number(rows[0]?.failed ?? 0);
  return {
    windowSeconds,
    completed,
    failed,
    ratio: completed + failed === 0 ? null : failed / (completed + failed),
  };
}
