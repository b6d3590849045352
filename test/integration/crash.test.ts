import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler as createConsumer } from '../../functions/consumer.ts';
import { enqueueMany, readCounters } from '../../functions/engine/index.ts';
import { createHandler as createReaper } from '../../functions/reaper.ts';
import { expectAllTerminal, expectCountersMatchTable } from '../helpers/invariants.ts';
import { fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { spawnTs } from '../helpers/processes.ts';

describe.runIf(await postgresAvailable())('a consumer killed mid-batch', () => {
  let t: TestSchema;
  beforeAll(async () => {
    t = await createTestSchema('crash');
  });
  afterAll(async () => t?.drop());

  it('SIGKILL mid-batch: after the lease the reaper requeues its jobs, they complete once, recovered counts them', async () => {
    // Prepare: 6 slow jobs, a child consumer that claims them all.
    await enqueueMany(
      t.db,
      Array.from({ length: 6 }, () => ({ type: 'example.sleep', payload: { ms: 1500 } })),
    );
    const child = spawnTs('test/helpers/consumer-worker.ts', {
      DATABASE_URL: t.url,
      LEASE_SECONDS: '2',
      BATCH_SIZE: '10',
      CONSUMER_CONCURRENCY: '10',
      LOG_LEVEL: 'silent',
    });
    await child.waitFor(/worker \d+ up/, 60_000);
    for (let i = 0; i < 200; i++) {
      const { rows } = await t.db.query<{ n: string }>(
        "SELECT count(*) AS n FROM jobs WHERE status = 'running'",
      );
      if (Number(rows[0]!.n) === 6) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const { rows: held } = await t.db.query<{ locked_by: string }>(
      "SELECT DISTINCT locked_by FROM jobs WHERE status = 'running'",
    );
    expect(held).toHaveLength(1);
    expect(held[0]!.locked_by).toMatch(/^child-/);

    // Act: kill it mid-batch; nothing can release its jobs but the lease expiry.
    child.child.kill('SIGKILL');
    await child.stop();
    const reaper = createReaper({ db: t.db, env: { LOG_LEVEL: 'silent' }, logStream: logSink() });
    expect((await reaper({}, fakeContext(10_000))).recovered).toBe(0);
    await new Promise((r) => setTimeout(r, 2300));
    const reaped = await reaper({}, fakeContext(10_000));
    const consumer = createConsumer({
      db: t.db,
      env: { LOG_LEVEL: 'silent', CONSUMER_IDLE_EXIT_MS: '200' },
      logStream: logSink(),
    });
    const summary = await consumer({}, fakeContext(20_000));

    // Assess
    expect(reaped).toMatchObject({ recovered: 6, requeued: 6, failed: 0 });
    expect(summary.completed).toBe(6);
    await expectAllTerminal(t.db);
    await expectCountersMatchTable(t.db);
    expect((await readCounters(t.db)).totals).toMatchObject({ completed: 6, recovered: 6 });
    const { rows } = await t.db.query<{ attempts: number; lease_token: string }>(
      'SELECT attempts, lease_token FROM jobs',
    );
    for (const r of rows) expect(r).toEqual({ attempts: 2, lease_token: '2' });
  }, 90_000);
});
