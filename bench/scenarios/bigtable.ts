import { analyze, handlers, holding, sql } from '../lib/harness.ts';
import { BIG_ROWS, JOBS, ROUNDS, WORKERS } from '../lib/options.ts';
import { freshDatabase, migrateEngine } from '../lib/pg.ts';
import { log, record } from '../lib/results.ts';
import { SYSTEMS } from '../systems/index.ts';
import type { Scenario } from './types.ts';

/**
 * One database with BIG_ROWS finished jobs, kept over the rounds; VACUUM ANALYZE after the fill.
 * Finished today: since migration 0022 they sit in today's partition, the one completions go to.
 */
async function fill(url: string): Promise<void> {
  const t0 = performance.now();
  await sql(
    url,
    `INSERT INTO jobs (task_type, payload, status, attempts, lease_token, started_at, finished_at, created_at, updated_at)
     SELECT 'example.echo', '{}'::jsonb, 'completed', 1, 1, now() - interval '1 hour', now(),
            now() - interval '1 hour', now()
     FROM generate_series(1, $1::int)`,
    [BIG_ROWS],
  );
  await sql(url, 'VACUUM ANALYZE jobs');
  log(
    `  bigtable   built ${BIG_ROWS.toLocaleString('en-US')} finished rows in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
}

/** (f) Drain with 5,000,000 finished rows in the table, against an empty table, same round. */
export const bigtableScenario: Scenario = {
  id: 'bigtable',
  quick: false,
  intro: `big table (f): ${BIG_ROWS.toLocaleString('en-US')} finished rows vs empty`,
  run: async () =>
    holding(await freshDatabase('bigtable'), async (big) => {
      const h = await handlers();
      await migrateEngine(big.url);
      await fill(big.url);
      for (let round = 1; round <= ROUNDS; round++) {
        await h.apiBatchEnqueue(big.url, JOBS);
        await analyze(big.url);
        const r = await h.consumerDrain(big.url, JOBS, WORKERS);
        record({
          scenario: 'bigtable',
          system: 'consumer-bigtable',
          round,
          jobs: r.done,
          workers: WORKERS,
          seconds: r.seconds,
        });
        await SYSTEMS.consumer.run({ round, jobs: JOBS, workers: WORKERS, scenario: 'bigtable' });
      }
    }),
};
