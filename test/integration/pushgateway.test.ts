import { spawnSync } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  claimJobs,
  completeJobs,
  enqueueMany,
  readCounters,
  requeueExpiredLeases,
} from '../../functions/engine/index.ts';
import { readRunningAges } from '../../functions/engine/sql/runningAges.ts';
import {
  collectLedger,
  createContainerMetrics,
  createProcessRegistry,
  ledgerRegistry,
  METRIC,
  renderExposition,
} from '../../functions/platform/metrics.ts';
import { createPushgateway, groupingPath, labelSegment } from '../../functions/platform/pushgateway.ts';
import { countByStatus, expireLease } from '../helpers/invariants.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import {
  pushgatewayBinary,
  type RunningPushgateway,
  requireBinary,
  sampleValue,
  startPushgateway,
} from '../helpers/pushgateway.ts';

const JOB = 'dte-test';
const RUNBOOK_SAFE_CANCEL = (id: string) =>
  `UPDATE jobs SET status='failed', updated_at = now() WHERE id = ${Number(id)};`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('grouping keys', () => {
  it('percent-encodes plain values and uses @base64 for values with a slash or empty values', () => {
    expect(labelSegment('function', 'consumer')).toBe('function/consumer');
    expect(labelSegment('instance', 'a b')).toBe('instance/a%20b');
    expect(labelSegment('instance', '2026/11/27/[$LATEST]ab')).toBe(
      `instance@base64/${Buffer.from('2026/11/27/[$LATEST]ab').toString('base64url')}`,
    );
    expect(labelSegment('function', '')).toBe('function@base64/=');
    expect(groupingPath('durable-task-engine')).toBe('/metrics/job/durable-task-engine');
    expect(groupingPath('j', { function: 'api', instance: 'i-1' })).toBe(
      '/metrics/job/j/function/api/instance/i-1',
    );
  });

  it('does nothing and reports skipped when no Pushgateway URL is set', async () => {
    const m = createContainerMetrics({ fn: 'consumer', containerId: 'c0' });
    let calls = 0;
    const gw = createPushgateway({
      url: undefined,
      failures: m,
      fetch: (async () => {
        calls++;
        return new Response('');
      }) as typeof fetch,
    });
    expect(gw.enabled).toBe(false);
    expect(await gw.pushLedger(m.registry)).toEqual({ ok: true, skipped: true });
    expect(await gw.pushContainer({ fn: 'consumer', instance: 'c0' }, m.registry)).toEqual({
      ok: true,
      skipped: true,
    });
    expect(await gw.deleteStaleGroups(1)).toMatchObject({ ok: true, skipped: true, deleted: 0 });
    expect(calls).toBe(0);
    expect(await failuresOf(m)).toBe(0);
  });
});

describe('push budget', () => {
  it('with no time left before the deadline, sends nothing and counts the failure', async () => {
    const m = createContainerMetrics({ fn: 'consumer', containerId: 'c0' });
    let calls = 0;
    const gw = createPushgateway({
      url: 'http://127.0.0.1:9',
      failures: m,
      fetch: (async () => {
        calls++;
        return new Response('');
      }) as typeof fetch,
    });
    const push = await gw.pushContainer({ fn: 'consumer', instance: 'c0' }, m.registry, { timeoutMs: 0 });
    const cleanup = await gw.deleteStaleGroups(900, { timeoutMs: -5 });
    expect(push).toEqual({ ok: false, skipped: false, error: 'no time left before the deadline' });
    expect(cleanup).toMatchObject({ ok: false, error: 'no time left before the deadline' });
    expect(calls).toBe(0);
    expect(await failuresOf(m)).toBe(2);
  });
});

describe('local exposition', () => {
  it('merges registries under one HELP and TYPE per family and keeps every container series', async () => {
    const a = createContainerMetrics({ fn: 'local', containerId: 'consumer-1' });
    const b = createContainerMetrics({ fn: 'local', containerId: 'consumer-2' });
    a.observeClaim(0.004, 3);
    b.observeClaim(0.002, 0);
    const ledger = ledgerRegistry({
      snapshot: {
        totals: { submitted: 7, completed: 4, failed: 1, recovered: 2 },
        running: 1,
        queues: [
          { queue: 'default', ready: 1, scheduled: 1, running: 1, oldestReadyAgeSeconds: 3.5, paused: false },
        ],
        at: new Date(),
      },
    });
    const text = await renderExposition(ledger, a.registry, b.registry, createProcessRegistry());

    for (const name of [
      METRIC.claimLatency,
      METRIC.dbErrors,
      METRIC.submitted,
      'process_cpu_seconds_total',
    ]) {
      expect(text.match(new RegExp(`^# HELP ${name} `, 'gm'))).toHaveLength(1);
      expect(text.match(new RegExp(`^# TYPE ${name} `, 'gm'))).toHaveLength(1);
    }
    expect(text).toContain(`# TYPE ${METRIC.completed} counter`);
    expect(text).toContain(`# TYPE ${METRIC.running} gauge`);
    expect(sampleValue(text, METRIC.submitted)).toBe(7);
    expect(sampleValue(text, METRIC.completed)).toBe(4);
    expect(sampleValue(text, METRIC.failed)).toBe(1);
    expect(sampleValue(text, METRIC.recovered)).toBe(2);
    expect(sampleValue(text, METRIC.running)).toBe(1);
    expect(sampleValue(text, METRIC.queueOldestReadyAge, { queue: 'default' })).toBe(3.5);
    const count = `${METRIC.claimLatency}_count`;
    expect(sampleValue(text, count, { function: 'local', instance: 'consumer-1', outcome: 'claimed' })).toBe(
      1,
    );
    expect(sampleValue(text, count, { function: 'local', instance: 'consumer-2', outcome: 'empty' })).toBe(1);
  });

  it('is a valid exposition by promtool check metrics', async (ctx) => {
    const promtool = requireBinary(['promtool'], 'promtool check metrics');
    if (!promtool) return ctx.skip();
    const m = createContainerMetrics({ fn: 'local', containerId: 'c1' });
    m.observeRun('example.echo', 'completed', 0.01);
    const ledger = ledgerRegistry({
      snapshot: {
        totals: { submitted: 1, completed: 1, failed: 0, recovered: 0 },
        running: 0,
        queues: [],
        at: new Date(),
      },
    });
    const text = await renderExposition(ledger, m.registry);
    const res = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(res.stderr + res.stdout).toBe('');
    expect(res.status).toBe(0);
  });
});

const pgUp = await postgresAvailable();
const binary = pgUp ? pushgatewayBinary() : undefined;

describe.runIf(pgUp && binary)('metrics through a real Pushgateway', () => {
  let t: TestSchema;
  let gw: RunningPushgateway;
  let hanging: Server;
  let hangingUrl: string;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    t = await createTestSchema('pushgw');
    gw = await startPushgateway(binary!);
    // Accepts connections and never answers: what a wedged Pushgateway looks like to a client.
    hanging = createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
    const address = hanging.address();
    hangingUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => hanging?.close(r));
    await gw?.stop();
    await t?.drop();
  });
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
  });

  it('four containers complete 1,000 jobs concurrently and the pushed ledger shows exact totals', async () => {
    // Prepare
    const jobs = Array.from({ length: 1000 }, (_, i) => ({ type: 'example.echo', payload: { i } }));
    for (let i = 0; i < jobs.length; i += 500) await enqueueMany(t.db, jobs.slice(i, i + 500));
    const containers = Array.from({ length: 4 }, (_, i) => ({
      db: t.connect({ max: 1 }),
      metrics: createContainerMetrics({ fn: 'consumer', containerId: `container-${i}` }),
    }));
    // Act: each container drains with its own pool, worker id and registry, then pushes its group.
    await Promise.all(
      containers.map(async ({ db, metrics }) => {
        const pusher = createPushgateway({ url: gw.url, job: JOB, failures: metrics });
        for (;;) {
          const started = performance.now();
          const claimed = await metrics.track('claim', () =>
            claimJobs(db, { workerId: metrics.containerId, limit: 25, leaseSeconds: 30, queues: [] }),
          );
          metrics.observer.claimed(performance.now() - started, claimed.length);
          if (claimed.length === 0) break;
          const done = await metrics.track('complete', () => completeJobs(db, claimed));
          for (const job of claimed) metrics.observeRun(job.type, done.has(job.id) ? 'completed' : 'lost', 0);
        }
        const pushed = await pusher.pushContainer(
          { fn: 'consumer', instance: metrics.containerId },
          metrics.registry,
        );
        expect(pushed).toEqual({ ok: true, skipped: false });
      }),
    );
    const reaper = createContainerMetrics({ fn: 'reaper', containerId: 'reaper-1' });
    const result = await createPushgateway({ url: gw.url, job: JOB, failures: reaper }).pushLedger(
      await collectLedger(t.db),
    );
    // Assess
    expect(result).toEqual({ ok: true, skipped: false });
    const text = await gw.metricsText();
    expect(sampleValue(text, METRIC.submitted, { job: JOB })).toBe(1000);
    expect(sampleValue(text, METRIC.completed, { job: JOB })).toBe(1000);
    expect(sampleValue(text, METRIC.failed, { job: JOB })).toBe(0);
    expect(sampleValue(text, METRIC.running, { job: JOB })).toBe(0);
    expect(text).toContain(`# TYPE ${METRIC.completed} counter`);
    const perContainer = containers.map((c) =>
      sampleValue(text, `${METRIC.runDuration}_count`, {
        job: JOB,
        function: 'consumer',
        instance: c.metrics.containerId,
        task_type: 'example.echo',
        outcome: 'completed',
      }),
    );
    expect(perContainer.reduce((a, b) => a! + b!, 0)).toBe(1000);
    const emptyClaims = containers.map((c) =>
      sampleValue(text, `${METRIC.claimLatency}_count`, {
        job: JOB,
        function: 'consumer',
        instance: c.metrics.containerId,
        outcome: 'empty',
      }),
    );
    expect(emptyClaims).toEqual([1, 1, 1, 1]);
    expect((await countByStatus(t.db)).completed).toBe(1000);
    await Promise.all(containers.map((c) => c.db.end()));
  });

  it('expired leases show in recovered one for one, and a runbook cancel shows in failed', async () => {
    // Prepare
    const pusher = createPushgateway({ url: gw.url, job: JOB });
    await enqueueMany(
      t.db,
      Array.from({ length: 5 }, (_, i) => ({ type: 'example.echo', payload: { i }, queue: 'mail' })),
    );
    const claimed = await claimJobs(t.db, { workerId: 'w1', limit: 3, leaseSeconds: 30, queues: [] });
    await expireLease(t.db, 'all');
    const { rows } = await t.db.query<{ id: string }>(
      `SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1`,
    );
    // Act
    const recovery = await requeueExpiredLeases(t.db, 100);
    await t.db.query(RUNBOOK_SAFE_CANCEL(rows[0]!.id));
    await pusher.pushLedger(await collectLedger(t.db));
    // Assess
    const text = await gw.metricsText();
    expect(claimed).toHaveLength(3);
    expect(recovery.recovered).toBe(3);
    expect(sampleValue(text, METRIC.recovered, { job: JOB })).toBe(3);
    expect(sampleValue(text, METRIC.failed, { job: JOB })).toBe(1);
    expect(sampleValue(text, METRIC.submitted, { job: JOB })).toBe(5);
    expect(sampleValue(text, METRIC.queueReady, { job: JOB, queue: 'mail' })).toBe(4);
  });

  it('exports per-queue depth, running ages and stuck jobs from the database', async () => {
    // Prepare: two running in "mail" (one silent for 10 leases), one ready and one scheduled in "default".
    await enqueueMany(t.db, [
      { type: 't', payload: 1, queue: 'mail' },
      { type: 't', payload: 2, queue: 'mail' },
    ]);
    await claimJobs(t.db, { workerId: 'w1', limit: 2, leaseSeconds: 10, queues: ['mail'] });
    const { rows } = await t.db.query<{ id: string }>(`SELECT min(id) AS id FROM jobs`);
    await t.db.query(
      `UPDATE jobs SET locked_at = now() - interval '100 seconds', started_at = now() - interval '100 seconds' WHERE id = $1`,
      [rows[0]!.id],
    );
    await enqueueMany(t.db, [
      { type: 't', payload: 3 },
      { type: 't', payload: 4, delaySeconds: 3600 },
    ]);
    // Act
    const ages = await readRunningAges(t.db, 5);
    const text = await renderExposition(await collectLedger(t.db));
    // Assess
    expect(ages).toEqual([{ queue: 'mail', running: 2, oldestAgeSeconds: expect.any(Number), stuck: 1 }]);
    expect(ages[0]!.oldestAgeSeconds).toBeGreaterThanOrEqual(100);
    expect(sampleValue(text, METRIC.runningStuck, { queue: 'mail' })).toBe(1);
    expect(sampleValue(text, METRIC.runningStuck, { queue: 'default' })).toBe(0);
    expect(sampleValue(text, METRIC.runningOldestAge, { queue: 'mail' })).toBeGreaterThanOrEqual(100);
    expect(sampleValue(text, METRIC.queueRunning, { queue: 'mail' })).toBe(2);
    expect(sampleValue(text, METRIC.queueReady, { queue: 'default' })).toBe(1);
    expect(sampleValue(text, METRIC.queueScheduled, { queue: 'default' })).toBe(1);
    expect(sampleValue(text, METRIC.running)).toBe((await readCounters(t.db)).running);
  });

  it('deletes stale container groups, keeps fresh ones, and never touches the ledger group', async () => {
    // Prepare: a container whose Lambda log stream name (with slashes) is its instance goes quiet.
    const pusher = createPushgateway({ url: gw.url, job: JOB });
    const other = createPushgateway({ url: gw.url, job: 'someone-else' });
    const stale = { fn: 'consumer', instance: '2026/11/27/[$LATEST]0123abcd' };
    const fresh = { fn: 'api', instance: 'fresh-1' };
    const reg = (id: string) => createContainerMetrics({ fn: 'x', containerId: id }).registry;
    expect((await pusher.pushLedger(await collectLedger(t.db))).ok).toBe(true);
    expect((await pusher.pushContainer(stale, reg(stale.instance))).ok).toBe(true);
    expect((await other.pushContainer({ fn: 'consumer', instance: 'z' }, reg('z'))).ok).toBe(true);
    // The Pushgateway's Date header has one-second resolution: 2.5 s apart is always more than 1 s stale.
    await sleep(2500);
    expect((await pusher.pushContainer(fresh, reg(fresh.instance))).ok).toBe(true);
    const before = await gw.metricsText();
    expect(
      sampleValue(before, 'push_time_seconds', { job: JOB, function: stale.fn, instance: stale.instance }),
    ).toBeGreaterThan(0);
    // Act
    const result = await pusher.deleteStaleGroups(1);
    // Assess
    const after = await gw.metricsText();
    expect(result).toMatchObject({ ok: true, deleted: expect.any(Number), kept: 1 });
    expect(result.deleted).toBeGreaterThanOrEqual(1);
    expect(
      sampleValue(after, 'push_time_seconds', { job: JOB, function: stale.fn, instance: stale.instance }),
    ).toBeUndefined();
    expect(
      sampleValue(after, 'push_time_seconds', { job: JOB, function: fresh.fn, instance: fresh.instance }),
    ).toBeGreaterThan(0);
    expect(sampleValue(after, 'push_time_seconds', { job: JOB })).toBeGreaterThan(0);
    expect(sampleValue(after, METRIC.submitted, { job: JOB })).toBeDefined();
    expect(
      sampleValue(after, 'push_time_seconds', { job: 'someone-else', function: 'consumer', instance: 'z' }),
    ).toBeGreaterThan(0);
  });

  it('a stopped Pushgateway: the push fails fast, is counted, and throws nothing', async () => {
    // Prepare
    const doomed = await startPushgateway(binary!);
    const metrics = createContainerMetrics({ fn: 'consumer', containerId: 'c-stopped' });
    const warnings: Array<Record<string, unknown>> = [];
    const pusher = createPushgateway({
      url: doomed.url,
      job: JOB,
      timeoutMs: 1000,
      failures: metrics,
      logger: { warn: (_m, extra) => warnings.push(extra) },
    });
    expect((await pusher.pushContainer({ fn: 'consumer', instance: 'c-stopped' }, metrics.registry)).ok).toBe(
      true,
    );
    await doomed.stop();
    // Act
    const started = performance.now();
    const ledger = await pusher.pushLedger(ledgerRegistry({ snapshot: await readCounters(t.db) }));
    const container = await pusher.pushContainer({ fn: 'consumer', instance: 'c-stopped' }, metrics.registry);
    const cleanup = await pusher.deleteStaleGroups(900);
    const elapsed = performance.now() - started;
    // Assess
    expect(ledger).toMatchObject({ ok: false, error: expect.stringContaining('ECONNREFUSED') });
    expect(container.ok).toBe(false);
    expect(cleanup).toMatchObject({ ok: false, deleted: 0 });
    expect(elapsed).toBeLessThan(3000);
    expect(await failuresOf(metrics)).toBe(3);
    expect(await failuresOf(metrics, 'ledger')).toBe(1);
    expect(warnings.map((w) => w.target)).toEqual(['ledger', 'container', 'cleanup']);
  });

  it('a Pushgateway that never answers: the push returns after its timeout with the failure counted', async () => {
    // Prepare
    const metrics = createContainerMetrics({ fn: 'api', containerId: 'c-hang' });
    const pusher = createPushgateway({ url: hangingUrl, job: JOB, timeoutMs: 300, failures: metrics });
    // Act
    const started = performance.now();
    const push = await pusher.pushContainer({ fn: 'api', instance: 'c-hang' }, metrics.registry);
    const pushMs = performance.now() - started;
    const cleanup = await pusher.deleteStaleGroups(900, { timeoutMs: 200 });
    const totalMs = performance.now() - started;
    // Assess
    expect(push).toEqual({ ok: false, skipped: false, error: 'timed out after 300 ms' });
    expect(cleanup).toMatchObject({ ok: false, error: 'timed out after 200 ms' });
    expect(pushMs).toBeGreaterThanOrEqual(250);
    expect(pushMs).toBeLessThan(1500);
    expect(totalMs).toBeLessThan(2500);
    expect(await failuresOf(metrics, 'container')).toBe(1);
    expect(await failuresOf(metrics, 'cleanup')).toBe(1);
  });
});

async function failuresOf(
  m: ReturnType<typeof createContainerMetrics>,
  target?: 'ledger' | 'container' | 'cleanup',
): Promise<number> {
  const { values } = await m.pushFailures.get();
  return values
    .filter((v) => target === undefined || v.labels.target === target)
    .reduce((n, v) => n + v.value, 0);
}
