import { analyze, handlers, sql, withDatabase } from '../lib/harness.ts';
import { migrateEngine } from '../lib/pg.ts';
import { record } from '../lib/results.ts';
import { eachRound } from './interleaved.ts';
import type { Scenario } from './types.ts';

const JOBS = 100_000;

/** (e) The reaper handler recovering 100,000 expired leases. */
async function reaper(round: number): Promise<void> {
  await withDatabase(`reaper_${round}`, async (db) => {
    await migrateEngine(db.url);
    await sql(
      db.url,
      `INSERT INTO jobs (task_type, payload, status, attempts, lease_token, locked_at, locked_by, started_at, lease_seconds)
       SELECT 'example.echo', '{}'::jsonb, 'running', 1, 1, now() - interval '1 hour', 'dead-worker', now() - interval '1 hour', 30
       FROM generate_series(1, $1::int)`,
      [JOBS],
    );
    await analyze(db.url);
    const r = await (await handlers()).reaperRecover(db.url, JOBS);
    record({
      scenario: 'reaper',
      system: 'reaper',
      round,
      jobs: r.recovered,
      seconds: r.seconds,
      extra: { invocations: r.invocations },
    });
  });
}

export const reaperScenario: Scenario = {
  id: 'reaper',
  quick: false,
  intro: 'reaper (e): 100,000 expired leases',
  run: () => eachRound(reaper),
};
