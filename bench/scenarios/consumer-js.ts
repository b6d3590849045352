import type { Db, QueryResult } from '../../functions/engine/queryable.ts';
import { memoryDb } from '../lib/memory-db.ts';
import { ADMIN_URL } from '../lib/pg.ts';
import { log, recordQuiet } from '../lib/results.ts';
import { round } from '../lib/stats.ts';
import { eachRound } from './interleaved.ts';
import type { Scenario } from './types.ts';

/**
 * `db` also answering the presence statements (consumer_touch, consumer_leave) as the real
 * database does: without them every claim's presence touch threw and logged a warning, a cost
 * (about 0.4 µs a job at claim 50) the consumer never pays against PostgreSQL, where the row is
 * touched once every quarter of CONSUMER_LIVE_MS.
 */
function withPresence(db: Db): Db {
  return {
    ...db,
    query<R>(text: string, values?: readonly unknown[]): Promise<QueryResult<R>> {
      if (text.includes('consumer_touch(') || text.includes('consumer_leave('))
        return Promise.resolve({ rows: [], rowCount: 1 });
      return db.query<R>(text, values);
    },
  };
}

/**
 * The consumer handler's own JavaScript per job, with no database sharing the CPU: the same
 * createHandler (shipped defaults, logging at info into a discarding stream) over an in-memory
 * stand-in for jobs_claim/jobs_complete (lib/memory-db.ts). A diagnostic, never a drain rate.
 */
async function consumerJs(roundNo: number): Promise<void> {
  const jobs = 100_000;
  const { createHandler } = await import('../../functions/consumer.ts');
  const { discard, lambdaContext } = await import('../lib/lambda.ts');
  const db = memoryDb(jobs);
  const h = createHandler({
    db: withPresence(db),
    env: { DATABASE_URL: ADMIN_URL, CONSUMER_IDLE_EXIT_MS: '0' },
    logStream: discard(),
  });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const summary = await h({}, lambdaContext('bench-consumer-js', 600_000));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  if (summary.completed !== jobs || db.completed() !== jobs)
    throw new Error(`consumer on the in-memory database completed ${summary.completed} of ${jobs}`);
  recordQuiet({
    scenario: 'consumer-js',
    system: 'consumer-memory',
    round: roundNo,
    jobs,
    seconds,
    rate: jobs / seconds,
    extra: { nodeCpuUsPerJob: round((cpu.user + cpu.system) / jobs, 2) },
  });
  log(
    `  consumer-js r${roundNo} ${((cpu.user + cpu.system) / jobs).toFixed(2)} µs of Node CPU per job (no database)`,
  );
}

export const consumerJsScenario: Scenario = {
  id: 'consumer-js',
  quick: false,
  intro: "consumer-js: the consumer handler's own JavaScript per job, on an in-memory database",
  run: () => eachRound(consumerJs),
};
