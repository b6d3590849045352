import { cpuMeter } from '../lib/cpu.ts';
import { noopRequests } from '../lib/engine.ts';
import { withDatabase } from '../lib/harness.ts';
import { BATCH, TUNED_BATCH } from '../lib/options.ts';
import { migrateEngine } from '../lib/pg.ts';
import { rawDrain, rawSetup, rawUnnestEnqueue } from '../lib/raw.ts';
import { record, recordDrain } from '../lib/results.ts';
import { walMeter } from '../lib/wal.ts';
import type { SystemId } from './ids.ts';
import type { System, SystemRun } from './types.ts';

/** The raw SKIP LOCKED loop at a claim size (the shipped BATCH_SIZE, or the tuned one). */
function rawLoop(id: SystemId, batch: number): System {
  return {
    id,
    run: (run: SystemRun) =>
      withDatabase(`raw${batch}_${run.round}`, async (db) => {
        await rawSetup(db.url, run.jobs);
        const wal = await walMeter(db.url);
        const cpu = cpuMeter(db.name);
        const t0 = performance.now();
        const done = await rawDrain(db.url, run.workers, batch, undefined, cpu.stop);
        const seconds = (performance.now() - t0) / 1000;
        await wal.stop();
        recordDrain(id, run, { jobs: done, seconds, extra: { ...cpu.perJob(done), ...wal.perJob(done) } });
      }),
  };
}

export const raw = rawLoop('raw', BATCH);
export const rawTuned = rawLoop('raw-tuned', TUNED_BATCH);

/** The reference enqueue: one INSERT … SELECT FROM unnest of the same rows enqueueMany stores. */
export const enqueueUnnest: System = {
  id: 'enqueue-unnest',
  run: ({ round, jobs }) =>
    withDatabase(`unnest_${round}`, async (db) => {
      await migrateEngine(db.url);
      const seconds = await rawUnnestEnqueue(db.url, noopRequests(jobs));
      record({ scenario: 'enqueue', system: 'enqueue-unnest', round, jobs, seconds });
    }),
};
