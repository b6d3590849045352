import type { Command } from 'commander';
import {
  countJobsByQueue,
  failureRatio,
  findStuckJobs,
  listQueueControls,
  listQueueLimits,
  listQueueRetention,
  queueRows,
} from '../../../functions/engine/index.ts';
import { emit, readCommand } from '../context.ts';
import { age, table } from '../render.ts';

/** Past-lease jobs listed by status; the reaper normally takes them within its interval. */
const EXPIRED_SHOWN = 50;

export function registerStatus(program: Command): void {
  readCommand(
    program,
    {
      name: 'status',
      description:
        'counts by queue and status, oldest queued age, running jobs past their lease (worker, age), failure ratio over the last 5 minutes, paused queues, queue limits, queues that delete completed jobs',
      examples: ['taskctl status', 'taskctl --json status | jq .failureRatio'],
    },
    async (db, cmd) => {
      const [counts, controls, expired, ratio, limits, retention] = await Promise.all([
        countJobsByQueue(db),
        listQueueControls(db),
        findStuckJobs(db, { limit: EXPIRED_SHOWN }),
        failureRatio(db, 300),
        listQueueLimits(db),
        listQueueRetention(db),
      ]);
      const queues = queueRows(counts, controls);
      const pausedQueues = controls.filter((c) => c.paused);
      const expiredLeases = expired.map((e) => ({
        id: e.id,
        queue: e.queue,
        type: e.type,
        lockedBy: e.lockedBy,
        lockedForSeconds: e.lockedForSeconds,
        leaseSeconds: e.leaseSeconds,
        attempts: e.attempts,
        maxAttempts: e.maxAttempts,
      }));
      const json = {
        queues,
        expiredLeases,
        failureRatio: ratio,
        pausedQueues,
        queueLimits: limits,
        queueRetention: retention,
      };
      emit(cmd, json, () =>
        [
          'queues:',
          table(
            ['queue', 'queued', 'running', 'completed', 'failed', 'oldest queued', 'paused'],
            queues.map((q) => [
              q.queue,
              q.queued,
              q.running,
              q.completed,
              q.failed,
              q.queued > 0 ? age(q.oldestQueuedAgeSeconds) : '-',
              q.paused ? 'PAUSED' : '',
            ]),
          ),
          '',
          `running past their lease (${expiredLeases.length}${expiredLeases.length === EXPIRED_SHOWN ? '+' : ''}):`,
          table(
            ['id', 'queue', 'type', 'worker', 'locked for', 'lease'],
            expiredLeases.map((e) => [
              e.id,
              e.queue,
              e.type,
              e.lockedBy,
              age(e.lockedForSeconds),
              `${e.leaseSeconds}s`,
            ]),
          ),
          '',
          `failure ratio, last 5m: ${
            ratio.ratio === null ? 'n/a (nothing finished)' : `${(ratio.ratio * 100).toFixed(1)}%`
          } (${ratio.failed} failed, ${ratio.completed} completed)`,
          '',
          'paused queues:',
          table(
            ['queue', 'since', 'by', 'reason'],
            pausedQueues.map((p) => [p.name, p.pausedAt, p.pausedBy, p.reason]),
          ),
          '',
          'queue limits:',
          table(
            ['queue', 'max running', 'rate/s', 'burst'],
            limits.map((l) => [l.name, l.maxRunning ?? '-', l.ratePerSecond ?? '-', l.rateBurst ?? '-']),
          ),
          '',
          'queue retention (every other queue keeps its completed jobs):',
          table(
            ['queue', 'retention'],
            retention.map((r) => [r.name, r.retention]),
          ),
        ].join('\n'),
      );
    },
  );
}
