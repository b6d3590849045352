/**
 * The pgbouncer scenario's systems (issue 21): 16 short-lived "containers" each, every
 * invocation opening its connections through the bench's PgBouncer (transaction mode) and
 * closing them after. CPU per job is the bench server's (lib/cpu.ts) plus the bouncer's own.
 */
import { cpuMeter } from '../lib/cpu.ts';
import { analyze, handlers, loadPooledPeer, withDatabase } from '../lib/harness.ts';
import { engineDb, migrateEngine } from '../lib/pg.ts';
import type { Bouncer } from '../lib/pgbouncer.ts';
import { recordDrain } from '../lib/results.ts';
import { round } from '../lib/stats.ts';
import { walMeter } from '../lib/wal.ts';
import type { SystemId } from './ids.ts';
import { peerConfigs } from './peers.ts';
import type { SystemRun } from './types.ts';

/**
 * The short-lived consumer's invocation timeout: 2 s, of which the consumer keeps 1 s back
 * (engine/consumer/loop.ts, deadlineMargin) and claims for the other, sizing its claims from the
 * time left; so each container opens and closes its connections again and again within one
 * drain. pg-boss's invocations fetch for the same 1 s; graphile-worker's runOnce has no time
 * bound: it returns when it finds the queue empty.
 */
export const INVOCATION_MS = 2000;

export interface PooledSystem {
  id: SystemId;
  run(r: SystemRun, bouncer: Bouncer): Promise<void>;
}

const bouncerPerJob = (bouncer: Bouncer, fromMs: number, jobs: number) => ({
  bouncerCpuUsPerJob: jobs ? round(((bouncer.cpuMs() - fromMs) * 1000) / jobs, 1) : undefined,
});

/** Ours: the consumer handler, each invocation a new createHandler on a new pool of one, ended after. */
export const consumerPgbouncer: PooledSystem = {
  id: 'consumer-pgbouncer',
  run: ({ round: r, jobs, workers, scenario }, bouncer) =>
    withDatabase(`cpgb_${r}`, async (db) => {
      const h = await handlers();
      await migrateEngine(db.url);
      await h.apiBatchEnqueue(db.url, jobs);
      await analyze(db.url);
      const pooled = bouncer.through(db.url);
      const wal = await walMeter(db.url);
      const cpu = cpuMeter(db.name);
      const b0 = bouncer.cpuMs();
      const d = await h.consumerDrain(pooled, jobs, workers, {}, cpu.stop, {
        invocationMs: INVOCATION_MS,
        freshDb: () => engineDb(pooled, 1, 'dte-consumer'),
      });
      await wal.stop();
      recordDrain(
        'consumer-pgbouncer',
        { round: r, workers, scenario },
        {
          jobs: d.done,
          seconds: d.seconds,
          extra: {
            invocations: d.invocations,
            ...d.summaries,
            ...cpu.perJob(d.done),
            ...wal.perJob(d.done),
            ...bouncerPerJob(bouncer, b0, d.done),
          },
        },
      );
    }),
};

function pooledPeer(id: SystemId, file: string, slug: string): PooledSystem {
  return {
    id,
    run: async ({ round: r, jobs, workers, scenario }, bouncer) => {
      const adapter = await loadPooledPeer(file);
      await withDatabase(`${slug}_${r}`, async (db) => {
        let cpu: ReturnType<typeof cpuMeter> | undefined;
        let wal: Awaited<ReturnType<typeof walMeter>> | undefined;
        let b0 = 0;
        const d = await adapter.drainPooled(
          db.url,
          bouncer.through(db.url),
          jobs,
          workers,
          async () => {
            await analyze(db.url);
            wal = await walMeter(db.url);
            cpu = cpuMeter(db.name);
            b0 = bouncer.cpuMs();
          },
          () => cpu?.stop(),
        );
        await wal?.stop();
        peerConfigs[`${adapter.name} (pgbouncer)`] = { version: adapter.version, config: d.config };
        recordDrain(
          id,
          { round: r, workers, scenario },
          {
            jobs: d.done,
            seconds: d.seconds,
            version: adapter.version,
            extra: {
              invocations: d.invocations,
              enqueueSeconds: d.enqueueSeconds,
              ...cpu?.perJob(d.done),
              ...wal?.perJob(d.done),
              ...bouncerPerJob(bouncer, b0, d.done),
            },
          },
        );
      });
    },
  };
}

export const graphilePgbouncer = pooledPeer('graphile-pgbouncer', 'graphile-once.ts', 'gwpgb');
export const pgbossPgbouncer = pooledPeer('pgboss-pgbouncer', 'pgboss-fetch.ts', 'pbpgb');
export const POOLED_SYSTEMS: readonly PooledSystem[] = [
  consumerPgbouncer,
  graphilePgbouncer,
  pgbossPgbouncer,
];
