import { enqueue } from '../../functions/engine/index.ts';
import { analyze, sql, withDatabase } from '../lib/harness.ts';
import { engineDb, migrateEngine } from '../lib/pg.ts';
import { log, recordQuiet } from '../lib/results.ts';
import { percentile } from '../lib/stats.ts';
import { eachRound } from './interleaved.ts';
import type { Scenario } from './types.ts';

const RATE = 50;
const TOTAL = 1000;

/** Enqueues TOTAL jobs one by one at RATE per second, each on its due time. */
async function produce(url: string): Promise<void> {
  const producer = engineDb(url, 1, 'bench-producer');
  try {
    const t0 = performance.now();
    for (let i = 0; i < TOTAL; i++) {
      const wait = t0 + (i * 1000) / RATE - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await enqueue(producer, { type: 'example.echo', payload: { i } });
    }
  } finally {
    await producer.end();
  }
}

/** (c) Enqueue→start latency of a trickle (50 jobs/s for 20 s) while one consumer is live. */
async function trickle(round: number): Promise<void> {
  await withDatabase(`trickle_${round}`, async (db) => {
    await migrateEngine(db.url);
    await analyze(db.url);
    let stop = false;
    const consumer = (async () => {
      const { createHandler } = await import('../../functions/consumer.ts');
      const { discard, lambdaContext } = await import('../lib/lambda.ts');
      const h = createHandler({ env: { DATABASE_URL: db.url }, logStream: discard() });
      while (!stop) await h({}, lambdaContext('bench-trickle', 60_000));
    })();
    await new Promise((r) => setTimeout(r, 300));
    await produce(db.url);
    const pending = "SELECT count(*)::int AS n FROM jobs WHERE status IN ('queued', 'running')";
    while ((await sql(db.url, pending)).rows[0].n > 0) await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await consumer;
    // Both ends are database times: created_at (enqueue commit's now()) to started_at (claim's now()).
    const { rows } = await sql(
      db.url,
      'SELECT extract(epoch FROM started_at - created_at) * 1000 AS ms FROM jobs WHERE started_at IS NOT NULL',
    );
    const ms = rows.map((r) => Number(r.ms));
    recordQuiet({
      scenario: 'trickle',
      system: 'consumer',
      round,
      jobs: ms.length,
      seconds: 20,
      rate: RATE,
      extra: { p50Ms: percentile(ms, 50), p99Ms: percentile(ms, 99), maxMs: Math.max(...ms) },
    });
    log(
      `  trickle    r${round} p50 ${percentile(ms, 50).toFixed(1)} ms  p99 ${percentile(ms, 99).toFixed(1)} ms  (${ms.length} jobs)`,
    );
  });
}

export const trickleScenario: Scenario = {
  id: 'trickle',
  quick: false,
  intro: 'trickle (c): 50 jobs/s for 20 s, one live consumer',
  run: () => eachRound(trickle),
};
