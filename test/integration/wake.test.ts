import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHandler as createApi } from '../../functions/api.ts';
import { createHandler as createConsumer } from '../../functions/consumer.ts';
import { type ConsumerSettings, runConsumer } from '../../functions/engine/consumer.ts';
import { enqueue } from '../../functions/engine/enqueue.ts';
import type { Db } from '../../functions/engine/queryable.ts';
import { type Invoker, requestWake, type WakeReason } from '../../functions/engine/wake.ts';
import { createDb } from '../../functions/platform/db.ts';
import { createContainerMetrics } from '../../functions/platform/metrics.ts';
import { createRegistry } from '../../functions/tasks/index.ts';
import { type Bouncer, pgbouncerAvailable, startBouncer } from '../client/bouncer.ts';
import { countByStatus, expectCountersMatchTable } from '../helpers/invariants.ts';
import { apiEvent, fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** The invoker test double: counts invokes; optionally fails each one. */
function countingInvoker(fail = false): Invoker & { calls: WakeReason[] } {
  const calls: WakeReason[] = [];
  return {
    calls,
    async invoke(reason) {
      calls.push(reason);
      if (fail) throw new Error('invoke refused (test double)');
    },
  };
}

const settings = (over: Partial<ConsumerSettings> = {}): ConsumerSettings => ({
  batchSize: 50,
  concurrency: 10,
  leaseSeconds: 30,
  idleExitMs: 50,
  pollMs: 10,
  queues: [],
  advisoryLocks: false,
  backoffBaseSeconds: 1,
  maxBackoffSeconds: 10,
  liveMs: 5000,
  ...over,
});

const consume = (db: Db, s: ConsumerSettings, timeoutMs = 30_000, workerId = `w-${Math.random()}`) => {
  const ctx = fakeContext(timeoutMs);
  return runConsumer(
    { db, tasks: createRegistry(), logger: quiet, settings: s },
    { workerId, remainingMs: () => ctx.getRemainingTimeInMillis() },
  );
};

const waitFor = async (what: string, cond: () => Promise<boolean>, ms = 20_000) => {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

const env = (schemaDb: TestSchema, over: Record<string, string> = {}) => ({
  DATABASE_URL: schemaDb.url,
  LOG_LEVEL: 'silent',
  WAKE_DEBOUNCE_MS: '60000',
  ...over,
});

describe.runIf(await postgresAvailable())('wake on enqueue (issue 17, migration 0010)', () => {
  let t: TestSchema;
  beforeAll(async () => {
    t = await createTestSchema('wake');
  });
  afterAll(async () => t?.drop());
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas, consumer_presence, queue_wakes');
  });

  it('a burst of 2,000 single and 2,000 batched enqueues makes one invoke per debounce window, none while a consumer is live', async () => {
    // Prepare: the api with a counting invoker; no consumer live
    const invoker = countingInvoker();
    const metrics = createContainerMetrics({ fn: 'api', containerId: 'test' });
    const api = createApi({ env: env(t), db: t.db, invoker, metrics, logStream: logSink() });
    const ctx = fakeContext();
    // Act: 2,000 single enqueues, 20 at a time, and four batches of 500
    for (let i = 0; i < 2000; i += 20) {
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, k) =>
          api(apiEvent('POST', '/jobs', { type: 'example.echo', payload: i + k }), ctx),
        ),
      );
      for (const a of answers) expect((a as APIGatewayProxyStructuredResultV2).statusCode).toBe(201);
    }
    for (let b = 0; b < 4; b++) {
      const jobs = Array.from({ length: 500 }, (_, k) => ({
        type: 'example.echo',
        payload: k,
        queue: `q${(b + k) % 2}`,
      }));
      const a = (await api(
        apiEvent('POST', '/jobs/batch', { jobs }),
        ctx,
      )) as APIGatewayProxyStructuredResultV2;
      expect(a.statusCode).toBe(201);
    }
    // Assess: one invoke for `default`, and one for q0/q1 together (both woken in one call)
    expect(invoker.calls).toEqual(['enqueue', 'enqueue']);
    const { rows } = await t.db.query<{ queue: string; wakes: string }>(
      'SELECT queue, wakes FROM queue_wakes ORDER BY queue',
    );
    expect(rows).toEqual([
      { queue: 'default', wakes: '1' },
      { queue: 'q0', wakes: '1' },
      { queue: 'q1', wakes: '1' },
    ]);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/dte_wake_total\{outcome="invoked"[^}]*\} 2/);
    expect(text).toMatch(/dte_wake_total\{outcome="skipped"[^}]*\} 2002/);
    // Act: a consumer is live (its presence row), the debounce has passed
    await t.db.query(`UPDATE queue_wakes SET woken_at = now() - interval '1 hour'`);
    await t.db.query(`SELECT consumer_touch('live-one', NULL, 60000)`);
    await api(apiEvent('POST', '/jobs', { type: 'example.echo', payload: 'x' }), ctx);
    // Assess: no further invoke
    expect(invoker.calls).toHaveLength(2);
    // Act: it leaves; the next enqueue wakes
    await t.db.query(`SELECT consumer_leave('live-one')`);
    await api(apiEvent('POST', '/jobs', { type: 'example.echo', payload: 'y' }), ctx);
    expect(invoker.calls).toHaveLength(3);
  });

  it('the debounce admits one wake per window, however many callers race', async () => {
    // Act: 50 concurrent wake requests on separate connections
    const pool = t.connect({ max: 10 });
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => requestWake(pool, ['a', 'b'], 60_000)),
    );
    // Assess: each queue came back to exactly one caller
    expect(answers.flat().sort()).toEqual(['a', 'b']);
    // Act: after the window
    await t.db.query(`UPDATE queue_wakes SET woken_at = now() - interval '61 seconds'`);
    expect((await requestWake(t.db, ['a'], 60_000)).sort()).toEqual(['a']);
    await pool.end();
  });

  it('with the invoker failing, every enqueue answers as before and every job completes by the schedule', async () => {
    // Prepare
    const failing = countingInvoker(true);
    const plain = createApi({ env: env(t, { WAKE_ON_ENQUEUE: '0' }), db: t.db, logStream: logSink() });
    const metrics = createContainerMetrics({ fn: 'api', containerId: 'failing' });
    const api = createApi({
      env: env(t, { WAKE_DEBOUNCE_MS: '0' }),
      db: t.db,
      invoker: failing,
      metrics,
      logStream: logSink(),
    });
    const ctx = fakeContext();
    // Act: the same requests to an api without wake-up and one whose invokes all fail
    const shape = (r: APIGatewayProxyStructuredResultV2) => {
      const body = JSON.parse(r.body!);
      const strip = (j: Record<string, unknown>) => ({
        ...j,
        id: 'x',
        runAt: 'x',
        createdAt: 'x',
        updatedAt: 'x',
      });
      return {
        status: r.statusCode,
        body: body.jobs ? body.jobs.map(strip) : strip(body),
        location: Boolean(r.headers?.Location),
      };
    };
    const single = { type: 'example.echo', payload: 1 };
    const batch = {
      jobs: [
        { type: 'example.echo', payload: 2 },
        { type: 'example.echo', payload: 3, delaySeconds: 1 },
      ],
    };
    const a1 = shape(
      (await plain(apiEvent('POST', '/jobs', single), ctx)) as APIGatewayProxyStructuredResultV2,
    );
    const b1 = shape(
      (await api(apiEvent('POST', '/jobs', single), ctx)) as APIGatewayProxyStructuredResultV2,
    );
    const a2 = shape(
      (await plain(apiEvent('POST', '/jobs/batch', batch), ctx)) as APIGatewayProxyStructuredResultV2,
    );
    const b2 = shape(
      (await api(apiEvent('POST', '/jobs/batch', batch), ctx)) as APIGatewayProxyStructuredResultV2,
    );
    // Assess: identical answers; the invokes were attempted and counted as failed
    expect(b1).toEqual(a1);
    expect(b2).toEqual(a2);
    expect(failing.calls.length).toBe(2);
    expect(await metrics.registry.metrics()).toMatch(/dte_wake_total\{outcome="invoke_failed"[^}]*\} 2/);
    // Act: the schedule's consumer
    await new Promise((r) => setTimeout(r, 1100));
    const summary = await consume(t.db, settings());
    // Assess
    expect(summary.completed).toBe(6);
    expect(await countByStatus(t.db)).toMatchObject({ completed: 6 });
    await expectCountersMatchTable(t.db);
  });

  it('a consumer is live while it claims and leaves before its last claim', async () => {
    // Prepare: a consumer that stays a while
    const run = consume(t.db, settings({ idleExitMs: 300 }), 30_000, 'stayer');
    await waitFor(
      'the presence row',
      async () => (await t.db.query('SELECT 1 FROM consumer_presence')).rows.length === 1,
    );
    // Act + Assess: a wake while it is live wakes nothing
    expect(await requestWake(t.db, ['default'], 0)).toEqual([]);
    const summary = await run;
    expect(summary.exitReason).toBe('idle');
    // Assess: gone, and the next wake is granted
    expect((await t.db.query('SELECT 1 FROM consumer_presence')).rows).toHaveLength(0);
    expect(await requestWake(t.db, ['default'], 0)).toEqual(['default']);
  });

  it('claims once more after leaving: a job enqueued while the api still saw it live is run, not left to the schedule', async () => {
    // Prepare: a Db that enqueues a job right after the consumer's presence row went (the api
    // committed it just before, and its wake check saw the consumer live)
    let injected = '';
    const db: Db = {
      query: async (text, values) => {
        const out = await t.db.query(text, values);
        if (!injected && text.includes('consumer_leave'))
          injected = (await enqueue(t.db, { type: 'example.echo', payload: 'late' })).job.id;
        return out as never;
      },
      transaction: (fn) => t.db.transaction(fn),
      end: async () => {},
    };
    // Act
    const summary = await consume(db, settings());
    // Assess: the injected job ran in this invocation, which then left for good
    expect(injected).not.toBe('');
    expect(summary.completed).toBe(1);
    expect(await countByStatus(t.db)).toMatchObject({ completed: 1 });
    expect((await t.db.query('SELECT 1 FROM consumer_presence')).rows).toHaveLength(0);
  });

  it('an invocation that ran work stays while work trickles in: 20 jobs 200 ms apart run in one invocation', async () => {
    // Prepare: idle exit after 50 ms, stay 2 s after the last job (4 s longer than the 200 ms gaps would need)
    const run = consume(t.db, settings({ stayMs: 2000, stayPollMs: 20 }), 60_000);
    await waitFor(
      'presence',
      async () => (await t.db.query('SELECT 1 FROM consumer_presence')).rows.length === 1,
    );
    // Act
    for (let i = 0; i < 20; i++) {
      await enqueue(t.db, { type: 'example.echo', payload: i });
      await new Promise((r) => setTimeout(r, 200));
    }
    const summary = await run;
    // Assess: all 20 in the one invocation, which then left idle
    expect(summary.completed).toBe(20);
    expect(summary.exitReason).toBe('idle');
    expect(await countByStatus(t.db)).toMatchObject({ completed: 20 });
  });

  it('a staying invocation ends idle before its deadline and invokes no successor; a busy one at its deadline invokes one', async () => {
    // Prepare: the handler with a counting invoker, a 4 s invocation and a 60 s stay
    const invoker = countingInvoker();
    const consumer = createConsumer({
      db: t.db,
      invoker,
      env: env(t, {
        CONSUMER_IDLE_EXIT_MS: '300',
        CONSUMER_STAY_MS: '60000',
        CONSUMER_FUNCTION_NAME: 'dte-consumer',
      }),
      logStream: logSink(),
    });
    // Act: a trickle, so that it stays
    const run = consumer({}, fakeContext(4000));
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 150));
      await enqueue(t.db, { type: 'example.echo', payload: i });
    }
    const idle = await run;
    // Assess
    expect(idle).toMatchObject({ completed: 3, exitReason: 'idle' });
    expect(invoker.calls).toEqual([]);
    // Act: busy until its deadline
    await enqueue(t.db, { type: 'example.sleep', payload: { ms: 10_000 } });
    const busy = await consumer({}, fakeContext(3000));
    // Assess: released at the deadline, and a successor invoked for the work it leaves
    expect(busy.exitReason).toBe('deadline');
    expect(invoker.calls).toEqual(['successor']);
  });

  it('stays for a job due within delayStayMs and starts it after its run_at, in the same invocation', async () => {
    // Prepare: a job due in 2 s, one in 10 minutes (beyond the horizon)
    const { job } = await enqueue(t.db, { type: 'example.echo', payload: 'later', delaySeconds: 2 });
    await enqueue(t.db, { type: 'example.echo', payload: 'much later', delaySeconds: 600 });
    // Act
    const summary = await consume(t.db, settings({ delayStayMs: 60_000 }), 30_000);
    // Assess: it stayed once, ran the due job after its run_at, and left the far one queued
    expect(summary.stayedForDue).toBeGreaterThanOrEqual(1);
    expect(summary.completed).toBe(1);
    const { rows } = await t.db.query<{ late_ms: number; status: string }>(
      `SELECT status, extract(epoch FROM (coalesce(finished_at, now()) - run_at)) * 1000 AS late_ms FROM jobs WHERE id = $1`,
      [job.id],
    );
    expect(rows[0]!.status).toBe('completed');
    expect(Number(rows[0]!.late_ms)).toBeGreaterThanOrEqual(0);
    expect(await countByStatus(t.db)).toMatchObject({ completed: 1, queued: 1 });
  });

  it('without delayStayMs an idle invocation leaves the delayed job to the schedule', async () => {
    await enqueue(t.db, { type: 'example.echo', payload: 'later', delaySeconds: 2 });
    const summary = await consume(t.db, settings({ delayStayMs: 0 }));
    expect(summary.completed).toBe(0);
    expect(summary.stayedForDue).toBe(0);
  });

  it('wake-ups racing scheduled consumers never run a job twice', async () => {
    // Prepare: an api whose invoker starts a consumer run, and scheduled runs beside it
    const runs: Array<Promise<unknown>> = [];
    const ran = new Map<string, number>();
    const registry = createRegistry();
    const tasks = {
      get: (type: string) => {
        const task = registry.get(type);
        if (!task) return undefined;
        return {
          ...task,
          run: (async (payload: never, c: { jobId: string }) => {
            ran.set(c.jobId, (ran.get(c.jobId) ?? 0) + 1);
            return payload;
          }) as never,
        };
      },
    };
    const start = () => {
      const ctx = fakeContext(20_000);
      runs.push(
        runConsumer(
          {
            db: t.connect({ max: 1 }),
            tasks,
            logger: quiet,
            settings: settings({ stayMs: 500, delayStayMs: 5000 }),
          },
          { workerId: `c-${runs.length}`, remainingMs: () => ctx.getRemainingTimeInMillis() },
        ),
      );
    };
    const api = createApi({
      env: env(t, { WAKE_DEBOUNCE_MS: '0' }),
      db: t.db,
      invoker: { invoke: async () => start() },
      logStream: logSink(),
    });
    const ctx = fakeContext();
    // Act: 300 enqueues in bursts, some delayed, with a "schedule" starting consumers too
    for (let i = 0; i < 30; i++) {
      if (i % 10 === 0) start();
      await Promise.all(
        Array.from({ length: 10 }, (_, k) =>
          api(
            apiEvent('POST', '/jobs', { type: 'example.echo', payload: k, delaySeconds: k === 0 ? 1 : 0 }),
            ctx,
          ),
        ),
      );
      await new Promise((r) => setTimeout(r, 30));
    }
    await waitFor('every job completed', async () => (await countByStatus(t.db)).completed === 300, 60_000);
    await Promise.all(runs);
    // Assess: each job ran once; counters exact; nobody present after all left
    expect(ran.size).toBe(300);
    expect([...ran.values()].every((n) => n === 1)).toBe(true);
    await expectCountersMatchTable(t.db);
    expect((await t.db.query('SELECT 1 FROM consumer_presence WHERE seen_until > now()')).rows).toHaveLength(
      0,
    );
  });

  describe.runIf(pgbouncerAvailable())('behind PgBouncer in transaction mode', () => {
    let bouncer: Bouncer;
    beforeAll(async () => {
      bouncer = await startBouncer(t.schema, 2);
    });
    afterAll(async () => bouncer?.stop());

    it('presence, debounce and the stay work with no session state', async () => {
      // Prepare: every statement through the bouncer (two server connections shared)
      const viaBouncer = createDb({ connectionString: bouncer.url, max: 4 });
      const invoker = countingInvoker();
      const api = createApi({ env: env(t), db: viaBouncer, invoker, logStream: logSink() });
      const ctx = fakeContext();
      // Act: a burst with no consumer live
      await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          api(apiEvent('POST', '/jobs', { type: 'example.echo', payload: i }), ctx),
        ),
      );
      expect(invoker.calls).toHaveLength(1);
      // Act: the woken consumer through the bouncer, while more trickles in
      const run = consume(viaBouncer, settings({ idleExitMs: 1000, stayMs: 2000, stayPollMs: 20 }), 30_000);
      for (let i = 0; i < 5; i++) {
        await new Promise((r) => setTimeout(r, 200));
        await api(apiEvent('POST', '/jobs', { type: 'example.echo', payload: `t${i}` }), ctx);
      }
      const summary = await run;
      // Assess: one invocation did it all, the trickle woke nothing more, and it left
      expect(summary.completed).toBe(45);
      expect(invoker.calls).toHaveLength(1);
      expect((await t.db.query('SELECT 1 FROM consumer_presence')).rows).toHaveLength(0);
      await viaBouncer.end();
    });
  });
});
