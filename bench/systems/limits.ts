/**
 * The limits scenario's two systems (issue 18: "unlimited queues drain at the same rate as
 * before"): JOBS jobs of the unlimited queue `default` drained by the consumer handlers at
 * shipped defaults (every queue served), (a) with no queue limits configured anywhere, (b) with
 * another queue, `limited`, holding max_running and a rate limit set through the engine's API
 * and LIMITED_JOBS jobs queued in it. The drain ends when `default` has nothing queued or
 * running; the limited queue's jobs that ran meanwhile are not counted in its rate.
 */
import { setLimits } from '../../functions/engine/index.ts';
import { cpuMeter } from '../lib/cpu.ts';
import { analyze, handlers, sql, withDatabase } from '../lib/harness.ts';
import { engineDb, migrateEngine } from '../lib/pg.ts';
import { recordDrain } from '../lib/results.ts';
import { percentile } from '../lib/stats.ts';
import { walMeter } from '../lib/wal.ts';
import type { SystemId } from './ids.ts';
import type { System, SystemRun } from './types.ts';

export const LIMITED_JOBS = 1000;
export const LIMITS = { maxRunning: 2, rate: 5, burst: 5 } as const;

const PENDING_DEFAULT = `SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued' AND queue = 'default')
  OR EXISTS (SELECT 1 FROM jobs WHERE status = 'running' AND queue = 'default') AS e`;

const insert = (url: string, queue: string, count: number) =>
  sql(
    url,
    `INSERT INTO jobs (task_type, payload, queue) SELECT 'example.echo', '{}'::jsonb, $2 FROM generate_series(1, $1::int)`,
    [count, queue],
  );

function limitsSystem(id: SystemId, slug: string, withLimits: boolean): System {
  return {
    id,
    run: ({ round, jobs, workers, scenario }: SystemRun) =>
      withDatabase(`${slug}_${round}`, async (db) => {
        const h = await handlers();
        await migrateEngine(db.url);
        if (withLimits) {
          const edb = engineDb(db.url, 1, 'bench-limits');
          try {
            await setLimits(edb, 'limited', LIMITS, { actor: 'bench', reason: 'limits scenario' });
          } finally {
            await edb.end();
          }
          await insert(db.url, 'limited', LIMITED_JOBS);
        }
        await insert(db.url, 'default', jobs);
        await analyze(db.url);
        const wal = await walMeter(db.url);
        const cpu = cpuMeter(db.name);
        const d = await h.consumerDrain(db.url, jobs, workers, {}, cpu.stop, { pendingSql: PENDING_DEFAULT });
        await wal.stop();
        const { rows } = await sql(
          db.url,
          `SELECT count(*) FILTER (WHERE queue = 'default' AND status = 'completed')::int AS unlimited,
                  count(*) FILTER (WHERE queue = 'limited' AND status <> 'queued')::int AS limited
             FROM jobs`,
        );
        const unlimited = Number(rows[0].unlimited);
        if (unlimited !== jobs) throw new Error(`limits: ${unlimited} of ${jobs} unlimited jobs completed`);
        recordDrain(
          id,
          { round, workers, scenario },
          {
            jobs: unlimited,
            seconds: d.seconds,
            extra: {
              limitedQueue: withLimits ? { ...LIMITS, queued: LIMITED_JOBS } : null,
              limitedRan: Number(rows[0].limited),
              invocations: d.invocations,
              claimP99Ms: percentile(d.claimMs, 99),
              // Per unlimited job: the limited queue's few claims ride along in the same meter.
              ...cpu.perJob(unlimited),
              ...wal.perJob(unlimited),
            },
          },
        );
      }),
  };
}

export const consumerNolimits = limitsSystem('consumer-nolimits', 'nolimits', false);
export const consumerLimits = limitsSystem('consumer-limits', 'limits', true);
