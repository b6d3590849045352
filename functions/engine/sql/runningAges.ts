import type { Queryable } from '../queryable.ts';

export interface RunningAge {
  queue: string;
  running: number;
  /** Seconds since the oldest running attempt was claimed (started_at); 0 when none. */
  oldestAgeSeconds: number;
  /**
   * Running jobs whose lease has not been renewed for `stuckMultiple` lease lengths
   * (now() - locked_at > multiple × lease_seconds): the heartbeat stopped and the reaper has
   * not recovered them. The release checklist's "stuck jobs" query, with the lease as the
   * expected time (a heartbeat renews locked_at, so a healthy long task never counts).
   */
  stuck: number;
}

/** Per-queue ages of running jobs, for the stuck-job alert. Walks jobs_running_idx only. */
export async function readRunningAges(db: Queryable, stuckMultiple = 5): Promise<RunningAge[]> {
  const { rows } = await db.query<{ queue: string; running: string; oldest: string | null; stuck: string }>(
    `SELECT queue,
            count(*) AS running,
            extract(epoch FROM now() - min(started_at)) AS oldest,
            count(*) FILTER (WHERE locked_at + make_interval(secs => lease_seconds * $1) < now()) AS stuck
     FROM jobs
     WHERE status = 'running'
     GROUP BY queue
     ORDER BY queue`,
    [stuckMultiple],
  );
  return rows.map((r) => ({
    queue: r.queue,
    running: Number(r.running),
    oldestAgeSeconds: Math.max(0, Number(r.oldest ?? 0)),
    stuck: Number(r.stuck),
  }));
}
