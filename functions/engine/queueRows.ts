import type { QueueStatusCounts } from './sql/jobStats.ts';
import type { QueueControl } from './sql/queues.ts';

export interface QueueRow {
  queue: string;
  queued: number;
  running: number;
  completed: number;
  failed: number;
  oldestQueuedAgeSeconds: number;
  paused: boolean;
  pausedBy: string | null;
  pausedAt: Date | null;
  pauseReason: string | null;
}

/**
 * One row per queue known from jobs or from the pause table (a paused queue with no jobs still
 * shows), sorted by name: what `taskctl status` and the dashboard's overview both present.
 */
export function queueRows(
  counts: readonly QueueStatusCounts[],
  controls: readonly QueueControl[],
): QueueRow[] {
  const byQueue = new Map(counts.map((c) => [c.queue, c]));
  const control = new Map(controls.map((c) => [c.name, c]));
  const names = [...new Set([...byQueue.keys(), ...control.keys()])].sort();
  return names.map((name) => {
    const c = byQueue.get(name);
    const q = control.get(name);
    const paused = q?.paused ?? false;
    return {
      queue: name,
      queued: c?.counts.queued ?? 0,
      running: c?.counts.running ?? 0,
      completed: c?.counts.completed ?? 0,
      failed: c?.counts.failed ?? 0,
      oldestQueuedAgeSeconds: c?.oldestQueuedAgeSeconds ?? 0,
      paused,
      pausedBy: paused ? (q?.pausedBy ?? null) : null,
      pausedAt: paused ? (q?.pausedAt ?? null) : null,
      pauseReason: paused ? (q?.reason ?? null) : null,
    };
  });
}
