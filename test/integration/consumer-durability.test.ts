import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createHandler } from '../../functions/consumer.ts';
import { enqueueMany, getJob, pauseQueue } from '../../functions/engine/index.ts';
import { toJob } from '../../functions/engine/types.ts';
import { present } from '../../functions/http/routes.ts';
import { createRegistry, defineTask } from '../../functions/tasks/index.ts';
import { expectCountersMatchTable } from '../helpers/invariants.ts';
import { fakeContext, logSink, schedulerEvent } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

const quiet = { LOG_LEVEL: 'warn', CONSUMER_IDLE_EXIT_MS: '200', CONSUMER_POLL_MS: '20' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves when `cond` holds, polling; fails after a generous bound. */
async function until(cond: () => boolean | Promise<boolean>, what: string, boundMs = 20_000): Promise<void> {
  const end = Date.now() + boundMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe.runIf(await postgresAvailable())('consumer durability against hostile tasks (issue 15)', () => {
  let t: TestSchema;
  beforeAll(async () => {
    t = await createTestSchema('durable');
  });
  afterAll(async () => t?.drop());
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
  });

  describe('a job longer than any invocation', () => {
    it('started and aborted at every deadline, it ends failed ("exceeds the invocation time") after a bounded number of invocations', async () => {
      // Prepare: a task that runs until it is aborted, in invocations far shorter than it
      let runs = 0;
      const endless = defineTask({
        type: 'test.endless',
        schema: z.unknown(),
        run: (_p, ctx) => {
          runs++;
          return new Promise((_resolve, reject) => {
            ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
          });
        },
      });
      const [{ job }] = (await enqueueMany(t.db, [
        { type: 'test.endless', payload: null, maxAttempts: 1 },
      ])) as unknown as [{ job: { id: string } }];
      const consumer = createHandler({
        db: t.db,
        registry: createRegistry().register(endless),
        env: quiet,
        logStream: logSink(),
      });
      // Act: invocations of 1.5 s (0.5 s of run time) until the job leaves queued/running
      const statuses: string[] = [];
      for (let i = 0; i < 10; i++) {
        await consumer(schedulerEvent, fakeContext(1500));
        const row = await getJob(t.db, job.id);
        statuses.push(row!.status);
        if (row!.status === 'failed') break;
      }
      // Assess: released 3 times (attempt given back), the 4th deadline stop fails it
      expect(statuses).toEqual(['queued', 'queued', 'queued', 'failed']);
      expect(runs).toBe(4);
      const row = await getJob(t.db, job.id);
      expect(row).toMatchObject({ status: 'failed', attempts: 1, max_attempts: 1 });
      const counted = await t.db.query<{ n: number }>(
        'SELECT deadline_releases AS n FROM jobs WHERE id = $1',
        [job.id],
      );
      expect(counted.rows[0]!.n).toBe(4);
      const shown = present(toJob(row!));
      expect(shown.lastError).toMatchObject({
        name: 'InvocationTimeExceeded',
        deadlineReleases: 4,
        message: expect.stringMatching(/^exceeds the invocation time/),
      });
      await expectCountersMatchTable(t.db);
    });

    it('does not start a task whose timeoutSeconds does not fit the time left; the release is counted and bounded too', async () => {
      // Prepare: a 30 s task in 2 s invocations
      let runs = 0;
      const long = defineTask({
        type: 'test.long',
        schema: z.unknown(),
        timeoutSeconds: 30,
        run: async () => {
          runs++;
          return 'never';
        },
      });
      const [{ job }] = (await enqueueMany(t.db, [{ type: 'test.long', payload: null }])) as unknown as [
        { job: { id: string } },
      ];
      const consumer = createHandler({
        db: t.db,
        registry: createRegistry().register(long),
        env: quiet,
        logStream: logSink(),
      });
      // Act: one invocation
      const first = await consumer(schedulerEvent, fakeContext(2000));
      // Assess: never started, handed back with its attempt, one deadline release on the row,
      // and GET /jobs/{id} shows the count
      expect(runs).toBe(0);
      expect(first).toMatchObject({ claimed: 1, released: 1, completed: 0 });
      const row = await getJob(t.db, job.id);
      expect(row).toMatchObject({ status: 'queued', attempts: 0, locked_by: null });
      expect(present(toJob(row!)).lastError).toMatchObject({ name: 'Released', deadlineReleases: 1 });
      // Act: more invocations: bounded, then failed, still never started
      for (let i = 0; i < 6 && (await getJob(t.db, job.id))!.status !== 'failed'; i++)
        await consumer(schedulerEvent, fakeContext(1500));
      expect(runs).toBe(0);
      expect(await getJob(t.db, job.id)).toMatchObject({
        status: 'failed',
        last_error: { message: expect.stringMatching(/^exceeds the invocation time/) },
      });
      await expectCountersMatchTable(t.db);
    });
    it('near the end of an invocation, a task that would fit a fresh one is handed back uncounted and nothing more is claimed', async () => {
      // Prepare: 3 s to run tasks in (4 s less the 1 s margin); a 1.5 s job, then one with a 2 s
      // timeout that no longer fits once the first is done, then a third
      let runs = 0;
      const timed = defineTask({
        type: 'test.timed',
        schema: z.object({ ms: z.number() }),
        timeoutSeconds: 2,
        run: async (p) => {
          runs++;
          await sleep(p.ms);
          return p.ms;
        },
      });
      const [a, b, c] = await enqueueMany(t.db, [
        { type: 'test.timed', payload: { ms: 1500 } },
        { type: 'test.timed', payload: { ms: 0 } },
        { type: 'test.timed', payload: { ms: 0 } },
      ]);
      const consumer = createHandler({
        db: t.db,
        registry: createRegistry().register(timed),
        env: { ...quiet, CONSUMER_CONCURRENCY: '1', BATCH_SIZE: '2' },
        logStream: logSink(),
      });
      // Act
      const summary = await consumer(schedulerEvent, fakeContext(4000));
      // Assess: the first ran, the second went back with its attempt and no deadline release
      // counted, the third was never claimed
      expect(runs).toBe(1);
      expect(summary).toMatchObject({ claimed: 2, completed: 1, released: 1, exitReason: 'deadline' });
      const { rows } = await t.db.query<{
        id: string;
        status: string;
        attempts: number;
        lease_token: string;
        n: number;
      }>('SELECT id, status, attempts, lease_token, deadline_releases AS n FROM jobs ORDER BY id');
      expect(rows.map((r) => [String(r.id), r.status, r.attempts, String(r.lease_token), r.n])).toEqual([
        [a!.job.id, 'completed', 1, '1', 0],
        [b!.job.id, 'queued', 0, '1', 0],
        [c!.job.id, 'queued', 0, '0', 0],
      ]);
    });
  });

  describe('values jsonb cannot store', () => {
    const cyclic = () => {
      const o: Record<string, unknown> = { a: 1 };
      o.self = o;
      return o;
    };
    const bad: Record<string, () => unknown> = {
      nulString: () => ({ text: 'a\u0000b' }),
      nulKey: () => ({ 'k\u0000': 1 }),
      loneHigh: () => ['x\uD800y'],
      loneLow: () => '\uDC00',
      bigint: () => ({ n: 1n }),
      cyclic,
      throwingToJSON: () => ({
        toJSON() {
          throw new Error('toJSON refuses');
        },
      }),
    };

    /** Each reason says what was wrong, found in JavaScript before the value met the database. */
    const reasons: Record<string, RegExp> = {
      nulString: /NUL/,
      nulKey: /NUL/,
      loneHigh: /lone surrogate \(\\ud800\)/,
      loneLow: /lone surrogate \(\\udc00\)/,
      bigint: /BigInt/,
      cyclic: /circular/i,
      throwingToJSON: /toJSON refuses/,
    };

    it('a bad result fails its own job ("result not storable") and the rest of the batch completes, each job run once', async () => {
      // Prepare: 30 good jobs with one of each bad value among them, all in one batch
      const runsById = new Map<string, number>();
      const value = defineTask({
        type: 'test.value',
        schema: z.object({ kind: z.string(), i: z.number() }),
        run: async (p, ctx) => {
          runsById.set(ctx.jobId, (runsById.get(ctx.jobId) ?? 0) + 1);
          return p.kind === 'good' ? { ok: p.i, paired: '\uD83D\uDE00', escaped: '\\u0000' } : bad[p.kind]!();
        },
      });
      const kinds = Object.keys(bad);
      const payloads = Array.from({ length: 30 }, (_, i) => ({ kind: 'good', i }));
      for (const [k, kind] of kinds.entries()) payloads.splice(k * 4 + 1, 0, { kind, i: -1 });
      await enqueueMany(
        t.db,
        payloads.map((payload) => ({ type: 'test.value', payload, maxAttempts: 3 })),
      );
      const consumer = createHandler({
        db: t.db,
        registry: createRegistry().register(value),
        env: { ...quiet, CONSUMER_IDLE_EXIT_MS: '1000' },
        logStream: logSink(),
      });
      // Act
      const summary = await consumer(schedulerEvent, fakeContext(15_000));
      // Assess
      expect(summary).toMatchObject({ completed: 30, failed: kinds.length, exitReason: 'idle' });
      const { rows } = await t.db.query<{
        id: string;
        status: string;
        attempts: number;
        payload: { kind: string; i: number };
        result: unknown;
        last_error: { message: string; name: string } | null;
      }>('SELECT id, status, attempts, payload, result, last_error FROM jobs ORDER BY id');
      for (const r of rows) {
        expect(runsById.get(String(r.id))).toBe(1);
        if (r.payload.kind === 'good') {
          expect(r).toMatchObject({ status: 'completed', attempts: 1 });
          expect(r.result).toEqual({ ok: r.payload.i, paired: '\uD83D\uDE00', escaped: '\\u0000' });
        } else {
          expect(r, r.payload.kind).toMatchObject({ status: 'failed', attempts: 1, result: null });
          expect(r.last_error!.message, r.payload.kind).toMatch(/^result not storable: /);
          expect(r.last_error!.message, r.payload.kind).toMatch(reasons[r.payload.kind]!);
          expect(r.last_error!.name).toBe('NonRetryableError');
        }
      }
      await expectCountersMatchTable(t.db);
    });

    it('an error whose message holds NUL or a lone surrogate is recorded, sanitised, not lost', async () => {
      // Prepare
      const thrower = defineTask({
        type: 'test.throw-nul',
        schema: z.unknown(),
        run: async () => {
          const err = new Error('disk\u0000full \uD800 at block 7');
          err.name = 'Io\u0000Error';
          throw err;
        },
      });
      const [{ job }] = (await enqueueMany(t.db, [
        { type: 'test.throw-nul', payload: null, maxAttempts: 1 },
      ])) as unknown as [{ job: { id: string } }];
      const consumer = createHandler({
        db: t.db,
        registry: createRegistry().register(thrower),
        env: quiet,
        logStream: logSink(),
      });
      // Act
      const summary = await consumer(schedulerEvent, fakeContext(10_000));
      // Assess: failed for good, with the real error, NUL and the lone surrogate replaced
      expect(summary).toMatchObject({ failed: 1, exitReason: 'idle' });
      const row = await getJob(t.db, job.id);
      expect(row).toMatchObject({
        status: 'failed',
        last_error: { message: 'disk\uFFFDfull \uFFFD at block 7', name: 'Io\uFFFDError' },
      });
      expect((row!.last_error as { stack: string }).stack).toContain('disk\uFFFDfull');
    });

    it('when the database refuses a value the checks let through, the batch is completed job by job and only that job fails', async () => {
      // Prepare: a database that refuses any statement carrying the marker, as jsonb refuses NUL
      const marker = 'refused-by-the-database';
      const refusing = {
        ...t.db,
        query: async (text: string, values?: readonly unknown[]) => {
          const carries = (v: unknown) => typeof v === 'string' && v.includes(marker);
          if (values?.some((v) => (Array.isArray(v) ? v.some(carries) : carries(v))))
            throw Object.assign(new Error('unsupported Unicode escape sequence'), { code: '22P05' });
          return t.db.query(text, values);
        },
      } as typeof t.db;
      const echo = defineTask({ type: 'test.echo', schema: z.unknown(), run: async (p) => p });
      await enqueueMany(t.db, [
        ...Array.from({ length: 5 }, (_, i) => ({ type: 'test.echo', payload: { i } })),
        { type: 'test.echo', payload: { marker } },
        ...Array.from({ length: 5 }, (_, i) => ({ type: 'test.echo', payload: { i: i + 5 } })),
      ]);
      const consumer = createHandler({
        db: refusing,
        registry: createRegistry().register(echo),
        env: quiet,
        logStream: logSink(),
      });
      // Act
      const summary = await consumer(schedulerEvent, fakeContext(10_000));
      // Assess
      expect(summary).toMatchObject({ completed: 10, failed: 1, exitReason: 'idle' });
      const { rows } = await t.db.query<{ status: string; n: string }>(
        "SELECT status || CASE WHEN last_error ->> 'message' LIKE 'result not storable: %' THEN ' (not storable)' ELSE '' END AS status, count(*) AS n FROM jobs GROUP BY 1 ORDER BY 1",
      );
      expect(rows).toEqual([
        { status: 'completed', n: '10' },
        { status: 'failed (not storable)', n: '1' },
      ]);
    });
  });

  it('pause means pause: claimed jobs still waiting for a slot are released, not run, once their queue is paused', async () => {
    // Prepare: ten jobs claimed in one batch by a consumer that runs one at a time
    const started: number[] = [];
    let openGate: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    const gated = defineTask({
      type: 'test.gated',
      schema: z.object({ i: z.number() }),
      run: async (p) => {
        started.push(p.i);
        if (p.i === 0) await gate;
        return p.i;
      },
    });
    await enqueueMany(
      t.db,
      Array.from({ length: 10 }, (_, i) => ({ type: 'test.gated', queue: 'q', payload: { i } })),
    );
    const consumer = createHandler({
      db: t.db,
      registry: createRegistry().register(gated),
      env: { ...quiet, CONSUMER_CONCURRENCY: '1', BATCH_SIZE: '10' },
      logStream: logSink(),
    });
    // Act: pause the queue while the first runs, then let it finish
    const running = consumer(schedulerEvent, fakeContext(15_000));
    await until(() => started.length === 1, 'the first job to start');
    await pauseQueue(t.db, 'q', 'test');
    await sleep(400); // longer than the consumer's pause check interval (250 ms)
    openGate();
    const summary = await running;
    // Assess
    expect(started).toEqual([0]);
    expect(summary).toMatchObject({ claimed: 10, completed: 1, released: 9 });
    const { rows } = await t.db.query<{ status: string; attempts: number; n: string }>(
      'SELECT status, attempts, count(*) AS n FROM jobs GROUP BY 1, 2 ORDER BY 1',
    );
    expect(rows).toEqual([
      { status: 'completed', attempts: 1, n: '1' },
      { status: 'queued', attempts: 0, n: '9' },
    ]);
  });
});
