import type { Queryable } from '../queryable.ts';

export interface QueueControl {
  name: string;
  paused: boolean;
  pausedAt: Date | null;
  pausedBy: string | null;
  reason: string | null;
}

/** Consumers stop claiming from the queue at their next claim; running jobs finish. */
export async function pauseQueue(
  db: Queryable,
  name: string,
  actor: string,
  reason: string | null = null,
): Promise<void> {
  await db.query(
    `INSERT INTO queues (name, paused, paused_at, paused_by, reason, updated_at)
     VALUES ($1, true, now(), $2, $3, now())
     ON CONFLICT (name) DO UPDATE SET paused = true, paused_at = now(), paused_by = $2, reason = $3, updated_at = now()`,
    [name, actor, reason],
  );
}

export async function resumeQueue(db: Queryable, name: string, actor: string): Promise<void> {
  await db.query(
    `INSERT INTO queues (name, paused, paused_by, updated_at) VALUES ($1, false, $2, now())
     ON CONFLICT (name) DO UPDATE SET paused = false, paused_at = NULL, paused_by = $2, reason = NULL, updated_at = now()`,
    [name, actor],
  );
}

export async function listQueueControls(db: Queryable): Promise<QueueControl[]> {
  const { rows } = await db.query<{
    name: string;
    paused: boolean;
    paused_at: Date | null;
    paused_by: string | null;
    reason: string | null;
  }>('SELECT name, paused, paused_at, paused_by, reason FROM queues ORDER BY name');
  return rows.map((r) => ({
    name: r.name,
    paused: r.paused,
    pausedAt: r.paused_at,
    pausedBy: r.paused_by,
    reason: r.reason,
  }));
}
