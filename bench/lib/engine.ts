import {
  type ClaimedJob,
  claimJobs,
  completeJobs,
  type EnqueueRequest,
  enqueueMany,
} from '../../functions/engine/index.ts';
import type { PgDb } from '../../functions/platform/db.ts';
import { engineDb } from './pg.ts';

export function noopRequests(n: number, type = 'example.echo'): EnqueueRequest[] {
  return Array.from({ length: n }, () => ({ type, payload: {} }));
}

/** enqueueMany of all `reqs` in one call (one statement); returns seconds. */
export async function timeEnqueueMany(url: string, reqs: EnqueueRequest[]): Promise<number> {
  const db = engineDb(url, 1, 'bench-enqueue');
  try {
    await db.query('SELECT 1');
    const t0 = performance.now();
    const results = await enqueueMany(db, reqs);
    const seconds = (performance.now() - t0) / 1000;
    if (results.length !== reqs.length)
      throw new Error(`enqueueMany stored ${results.length} of ${reqs.length}`);
    return seconds;
  } finally {
    await db.end();
  }
}

export interface EngineDrainOptions {
  loops: number;
  batch: number;
  advisoryLocks?: boolean;
  leaseSeconds?: number;
  /** Called with each claim statement's latency in ms (scenario d). */
  onClaim?: (ms: number, got: number) => void;
  /** Called once every loop has ended, before the pool closes. */
  onDrained?: () => void;
  /**
   * Run on the drain's pool once its connections are open, before the loops (the unanalyzed
   * system's first burst: every backend claims while the table is small, then the burst lands).
   */
  beforeLoops?: (db: PgDb) => Promise<void>;
}

/**
 * The engine through its own functions: `loops` claim→complete loops, fencing and counters on,
 * one pool of `loops` connections (each loop has one query in flight at a time). A loop ends
 * when a claim comes back empty and no job is queued (not at the first empty claim: with many
 * claimers that came while the others held the head, and loops quitting early made the
 * 16-claimer latencies look better than they are).
 */
export async function engineDrain(
  url: string,
  o: EngineDrainOptions,
): Promise<{ done: number; lost: number }> {
  const db = engineDb(url, o.loops, 'bench-engine');
  let done = 0;
  let lost = 0;
  try {
    await Promise.all(Array.from({ length: o.loops }, () => db.query('SELECT 1')));
    await o.beforeLoops?.(db);
    await Promise.all(
      Array.from({ length: o.loops }, async (_, i) => {
        const workerId = `bench-${i}`;
        for (;;) {
          const t0 = performance.now();
          const jobs: ClaimedJob[] = await claimJobs(db, {
            workerId,
            limit: o.batch,
            leaseSeconds: o.leaseSeconds ?? 30,
            queues: [],
            advisoryLocks: o.advisoryLocks ?? false,
          });
          o.onClaim?.(performance.now() - t0, jobs.length);
          if (jobs.length === 0) {
            // Empty while others hold the head is not the end: a loop stops only on an empty queue.
            const { rows } = await db.query<{ left: boolean }>(
              "SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued') AS left",
            );
            if (!rows[0]!.left) return;
            continue;
          }
          const completed = await completeJobs(
            db,
            jobs.map((j) => ({ id: j.id, leaseToken: j.leaseToken })),
          );
          done += completed.size;
          lost += jobs.length - completed.size;
        }
      }),
    );
    o.onDrained?.();
  } finally {
    await db.end();
  }
  return { done, lost };
}
