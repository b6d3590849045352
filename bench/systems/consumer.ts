import { cpuMeter } from '../lib/cpu.ts';
import { analyze, handlers, withDatabase } from '../lib/harness.ts';
import { BATCH, TUNED } from '../lib/options.ts';
import { migrateEngine, setCounting } from '../lib/pg.ts';
import { record, recordDrain } from '../lib/results.ts';
import { percentile } from '../lib/stats.ts';
import { walMeter } from '../lib/wal.ts';
import type { SystemId } from './ids.ts';
import type { System, SystemRun } from './types.ts';

interface Variant {
  /** Database name prefix. */
  slug: string;
  /** Consumer environment on top of DATABASE_URL (the tuning). */
  env?: Record<string, string>;
  counting?: boolean;
  /** Whether the sample carries CPU per job, invocations and the claim p99 (not for no-counting). */
  detailed: boolean;
}

/**
 * The engine as deployed: jobs in through the api handler's POST /jobs/batch, drained by
 * `workers` consumer handlers (lib/handlers.ts). The default variant also records the main
 * scenario's API enqueue sample.
 */
function consumerHandlers(id: SystemId, o: Variant): System {
  return {
    id,
    run: ({ round, jobs, workers, scenario }: SystemRun) =>
      withDatabase(`${o.slug}_${round}`, async (db) => {
        const h = await handlers();
        await migrateEngine(db.url);
        if (o.counting === false) await setCounting(db.url, false);
        const enq = await h.apiBatchEnqueue(db.url, jobs);
        if (scenario === 'main' && id === 'consumer')
          record({ scenario: 'enqueue', system: 'api-batch', round, jobs, seconds: enq.seconds });
        await analyze(db.url);
        const wal = o.detailed ? await walMeter(db.url) : undefined;
        const cpu = o.detailed ? cpuMeter(db.name) : undefined;
        const r = await h.consumerDrain(db.url, jobs, workers, { ...o.env }, cpu?.stop);
        await wal?.stop();
        const extra = cpu && {
          ...o.env,
          invocations: r.invocations,
          logBytes: r.logBytes,
          ...r.summaries,
          claimP99Ms: percentile(r.claimMs, 99),
          ...cpu.perJob(r.done),
          ...wal?.perJob(r.done),
        };
        recordDrain(id, { round, workers, scenario }, { jobs: r.done, seconds: r.seconds, extra });
      }),
  };
}

export const consumer = consumerHandlers('consumer', { slug: 'consumer', detailed: true });
/** The defaults before adaptive claims: every claim asks for BATCH_SIZE 50. */
export const consumerFixed = consumerHandlers('consumer-fixed', {
  slug: 'consumerfixed',
  env: { CLAIM_ADAPTIVE: '0', BATCH_SIZE: String(BATCH) },
  detailed: true,
});
export const consumerTuned = consumerHandlers('consumer-tuned', {
  slug: 'consumertuned',
  env: TUNED,
  detailed: true,
});
export const consumerNocount = consumerHandlers('consumer-nocount', {
  slug: 'consumernc',
  counting: false,
  detailed: false,
});
