import { claimJobs, completeJobs } from '../../functions/engine/index.ts';
import { cpuMeter } from '../lib/cpu.ts';
import { engineDrain, noopRequests, timeEnqueueMany } from '../lib/engine.ts';
import { analyze, sql, withDatabase } from '../lib/harness.ts';
import { BATCH } from '../lib/options.ts';
import { migrateEngine, setCounting } from '../lib/pg.ts';
import { labelOf, notes, record, recordDrain } from '../lib/results.ts';
import { walMeter } from '../lib/wal.ts';
import type { SystemId } from './ids.ts';
import type { System, SystemRun } from './types.ts';

interface Variant {
  /** Database name prefix. */
  slug: string;
  counting?: boolean;
  advisoryLocks?: boolean;
  analyze?: boolean;
  /**
   * The first burst into a new deployment: the drain's backends each claim and complete a job
   * while the table holds a few rows, so their cached generic plans are made there (a consumer
   * that polled before the burst); then the jobs are enqueued and drained, never analyzed.
   */
  firstBurst?: boolean;
}

/**
 * The engine through its own functions (enqueueMany, claimJobs, completeJobs) in `workers`
 * loops. The default variant also records the main scenario's enqueueMany sample.
 */
function engineFunctions(id: SystemId, o: Variant): System {
  return {
    id,
    run: ({ round, jobs, workers, scenario }: SystemRun) =>
      withDatabase(`${o.slug}_${round}`, async (db) => {
        await migrateEngine(db.url);
        if (o.counting === false) await setCounting(db.url, false);
        const fill = async () => {
          const enqSeconds = await timeEnqueueMany(db.url, noopRequests(jobs));
          if (scenario === 'main' && id === 'engine-fn')
            record({ scenario: 'enqueue', system: 'enqueue-many', round, jobs, seconds: enqSeconds });
          if (o.analyze !== false) await analyze(db.url);
        };
        if (!o.firstBurst) await fill();
        let wal = await walMeter(db.url);
        let cpu = cpuMeter(db.name);
        let t0 = performance.now();
        const r = await engineDrain(db.url, {
          loops: workers,
          batch: BATCH,
          advisoryLocks: o.advisoryLocks ?? false,
          onDrained: () => cpu.stop(),
          beforeLoops: o.firstBurst
            ? async (pool) => {
                await timeEnqueueMany(db.url, noopRequests(workers));
                const claim = {
                  limit: 1,
                  leaseSeconds: 30,
                  queues: [],
                  advisoryLocks: o.advisoryLocks ?? false,
                };
                const got = await Promise.all(
                  Array.from({ length: workers }, (_, i) =>
                    claimJobs(pool, { ...claim, workerId: `burst-${i}` }),
                  ),
                );
                await Promise.all(
                  got.map((js) =>
                    completeJobs(
                      pool,
                      js.map((j) => ({ id: j.id, leaseToken: j.leaseToken })),
                    ),
                  ),
                );
                await fill();
                // The meters and the clock start over: the burst's drain is what is measured
                wal = await walMeter(db.url);
                cpu = cpuMeter(db.name);
                t0 = performance.now();
              }
            : undefined,
        });
        const seconds = (performance.now() - t0) / 1000;
        await wal.stop();
        const left = Number(
          (await sql(db.url, "SELECT count(*) AS n FROM jobs WHERE status <> 'completed'")).rows[0].n,
        );
        recordDrain(
          id,
          { round, workers, scenario },
          {
            jobs: r.done,
            seconds,
            extra: { lost: r.lost, left, ...cpu.perJob(r.done), ...wal.perJob(r.done) },
          },
        );
        if (left > 0)
          notes.push(`${labelOf(id)} round ${round}: ${left} jobs left unfinished after the loops exited`);
      }),
  };
}

export const engineFn = engineFunctions('engine-fn', { slug: 'engine' });
export const engineFnNocount = engineFunctions('engine-fn-nocount', { slug: 'enginenc', counting: false });
export const engineFnAdvisory = engineFunctions('engine-fn-advisory', {
  slug: 'engineadv',
  advisoryLocks: true,
});
export const engineFnCold = engineFunctions('engine-fn-cold', {
  slug: 'enginecold',
  analyze: false,
  firstBurst: true,
});
