import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler as createApi } from '../../functions/api.ts';
import { createHandler as createConsumer } from '../../functions/consumer.ts';
import { claimJobs, enqueueMany } from '../../functions/engine/index.ts';
import { createContainerMetrics, METRIC } from '../../functions/platform/metrics.ts';
import { createHandler as createReaper } from '../../functions/reaper.ts';
import { expireLease } from '../helpers/invariants.ts';
import { apiEvent, fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import {
  freeLoopbackPort,
  pushgatewayBinary,
  type RunningPushgateway,
  sampleValue,
  startPushgateway,
} from '../helpers/pushgateway.ts';

const binary = pushgatewayBinary();
const JOB = 'dte-handlers';
const RUNBOOK_SAFE_CANCEL = (id: string) =>
  `UPDATE jobs SET status='failed', updated_at = now() WHERE id = ${Number(id)};`;

describe.runIf((await postgresAvailable()) && binary !== undefined)(
  'metrics through the real handlers and a real Pushgateway',
  () => {
    let t: TestSchema;
    let gw: RunningPushgateway;
    let env: Record<string, string>;
    beforeAll(async () => {
      t = await createTestSchema('metrics');
      gw = await startPushgateway(binary!);
      env = {
        PUSHGATEWAY_URL: gw.url,
        PUSHGATEWAY_JOB: JOB,
        LOG_LEVEL: 'silent',
        CONSUMER_IDLE_EXIT_MS: '300',
        BATCH_SIZE: '500',
      };
    });
    afterAll(async () => {
      await gw?.stop();
      await t?.drop();
    });

    it('four consumer containers complete 1,000 jobs; the reaper pushes submitted and completed = 1,000 exactly', async () => {
      // Prepare: 1,000 jobs through the API handler's batch route.
      const api = createApi({ db: t.db, env, logStream: logSink() });
      for (let b = 0; b < 2; b++) {
        const jobs = Array.from({ length: 500 }, (_, i) => ({ type: 'example.echo', payload: { b, i } }));
        const res = (await api(apiEvent('POST', '/jobs/batch', { jobs }), fakeContext())) as {
          statusCode: number;
        };
        expect(res.statusCode).toBe(201);
      }
      // Act: four containers, each its own pool, registry and worker ids, then one reaper run.
      const containers = Array.from({ length: 4 }, (_, i) =>
        createConsumer({
          db: t.connect({ max: 1 }),
          env,
          logStream: logSink(),
          metrics: createContainerMetrics({ fn: 'consumer', containerId: `c${i}` }),
        }),
      );
      const summaries = await Promise.all(containers.map((c) => c({}, fakeContext(30_000))));
      const reaper = createReaper({ db: t.db, env, logStream: logSink() });
      await reaper({}, fakeContext(10_000));
      // Assess
      expect(summaries.reduce((n, s) => n + s.completed, 0)).toBe(1000);
      const text = await gw.metricsText();
      expect(sampleValue(text, METRIC.submitted, { job: JOB })).toBe(1000);
      expect(sampleValue(text, METRIC.completed, { job: JOB })).toBe(1000);
      expect(sampleValue(text, METRIC.failed, { job: JOB })).toBe(0);
      expect(sampleValue(text, METRIC.running, { job: JOB })).toBe(0);
      // Every container pushed its claims under its own instance label; which of them got jobs
      // is a race (with adaptive claims of up to 500, two claims can take all 1,000), so the
      // claims that got jobs are counted over the four.
      let claimedCalls = 0;
      for (let i = 0; i < 4; i++) {
        const of = (outcome: string) =>
          sampleValue(text, `${METRIC.claimLatency}_count`, {
            job: JOB,
            function: 'consumer',
            instance: `c${i}`,
            outcome,
          }) ?? 0;
        expect(of('claimed') + of('empty'), `container c${i}`).toBeGreaterThan(0);
        claimedCalls += of('claimed');
      }
      expect(claimedCalls).toBeGreaterThanOrEqual(2);
    });

    it('expired leases show in recovered one for one; a runbook SQL cancel shows in failed', async () => {
      await enqueueMany(
        t.db,
        Array.from({ length: 7 }, () => ({ type: 'example.echo' })),
      );
      const claimed = await claimJobs(t.db, { workerId: 'ghost', limit: 5, leaseSeconds: 30, queues: [] });
      await expireLease(t.db, 'all');
      const { rows } = await t.db.query<{ id: string }>(
        "SELECT id FROM jobs WHERE status = 'queued' LIMIT 1",
      );
      await t.db.query(RUNBOOK_SAFE_CANCEL(rows[0]!.id));
      const reaper = createReaper({ db: t.db, env, logStream: logSink() });
      const summary = await reaper({}, fakeContext(10_000));
      expect(summary.recovered).toBe(claimed.length);
      const text = await gw.metricsText();
      expect(sampleValue(text, METRIC.recovered, { job: JOB })).toBe(5);
      expect(sampleValue(text, METRIC.failed, { job: JOB })).toBe(1);
      expect(sampleValue(text, METRIC.submitted, { job: JOB })).toBe(1007);
    });

    it('the reaper deletes a stale container group and keeps a fresh one', async () => {
      const stale = createConsumer({
        db: t.db,
        env,
        logStream: logSink(),
        metrics: createContainerMetrics({ fn: 'consumer', containerId: 'stale-one' }),
      });
      await stale({}, fakeContext(3000));
      // The Pushgateway's Date header has one-second resolution: wait past 2 s + 1 s.
      await new Promise((r) => setTimeout(r, 3300));
      const fresh = createConsumer({
        db: t.db,
        env,
        logStream: logSink(),
        metrics: createContainerMetrics({ fn: 'consumer', containerId: 'fresh-one' }),
      });
      await fresh({}, fakeContext(3000));
      const reaper = createReaper({
        db: t.db,
        env: { ...env, PUSHGATEWAY_STALE_SECONDS: '2' },
        logStream: logSink(),
      });
      await reaper({}, fakeContext(10_000));
      const text = await gw.metricsText();
      expect(text).not.toContain('instance="stale-one"');
      expect(text).toContain('instance="fresh-one"');
      expect(sampleValue(text, METRIC.completed, { job: JOB })).toBeGreaterThanOrEqual(1000);
    });

    it('with the Pushgateway down, jobs still complete, the push error is counted, and the handler returns in time', async () => {
      const deadPort = await freeLoopbackPort();
      const downEnv = { ...env, PUSHGATEWAY_URL: `http://127.0.0.1:${deadPort}`, PUSH_TIMEOUT_MS: '500' };
      await enqueueMany(
        t.db,
        Array.from({ length: 20 }, () => ({ type: 'example.echo' })),
      );
      const metrics = createContainerMetrics({ fn: 'consumer', containerId: 'offline' });
      const consumer = createConsumer({ db: t.db, env: downEnv, logStream: logSink(), metrics });
      const ctx = fakeContext(5000);
      const summary = await consumer({}, ctx);
      expect(summary.completed).toBe(20);
      expect(ctx.getRemainingTimeInMillis()).toBeGreaterThan(0);
      const failures = (await metrics.pushFailures.get()).values.find((v) => v.labels.target === 'container');
      expect(failures?.value).toBe(1);
    });
  },
);
