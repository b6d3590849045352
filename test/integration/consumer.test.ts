import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createHandler } from '../../functions/consumer.ts';
import { enqueueMany, getJob, pauseQueue, readCounters } from '../../functions/engine/index.ts';
import { createHandler as createReaper } from '../../functions/reaper.ts';
import { createRegistry, defineTask } from '../../functions/tasks/index.ts';
import { countByStatus, expectAllTerminal, expectCountersMatchTable } from '../helpers/invariants.ts';
import { fakeContext, logSink, schedulerEvent } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

const quiet = { LOG_LEVEL: 'warn', CONSUMER_IDLE_EXIT_MS: '200', CONSUMER_POLL_MS: '20' };

describe.runIf(await postgresAvailable())('consumer handler', () => {
  let t: TestSchema;
  beforeAll(async () => {
    t = await createTestSchema('consumer');
  });
  afterAll(async () => t?.drop());
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
  });

  it('drains echo, sleep and flaky jobs to one terminal state each, counters exact', async () => {
    await enqueueMany(t.db, [
      ...Array.from({ length: 120 }, (_, i) => ({ type: 'example.echo', payload: { i } })),
      { type: 'example.sleep', payload: { ms: 30 } },
      { type: 'example.flaky', payload: { failTimes: 1 } },
      { type: 'example.flaky', payload: { failTimes: 1, permanent: true } },
      { type: 'no.such.type', payload: {} },
      { type: 'example.sleep', payload: { ms: 'bad' } },
    ]);
    const consumer = createHandler({
      db: t.db,
      // The retried flaky job must be claimed again before the idle exit, even on a loaded machine.
      env: { ...quiet, CONSUMER_IDLE_EXIT_MS: '2000', BACKOFF_BASE_SECONDS: '0', MAX_BACKOFF_SECONDS: '0' },
      logStream: logSink(),
    });
    const summary = await consumer(schedulerEvent, fakeContext(20_000));
    expect(summary).toMatchObject({
      completed: 122,
      failed: 3,
      retried: 1,
      released: 0,
      lost: 0,
      exitReason: 'idle',
    });
    const byStatus = await countByStatus(t.db);
    expect(byStatus).toEqual({ queued: 0, running: 0, completed: 122, failed: 3 });
    const { rows } = await t.db.query<{ task_type: string; last_error: { message: string } }>(
      "SELECT task_type, last_error FROM jobs WHERE status = 'failed' ORDER BY id",
    );
    expect(rows.map((r) => r.last_error.message).join('\n')).toMatch(
      /flaky failure[\s\S]*no task registered[\s\S]*does not match the example.sleep schema/,
    );
    await expectCountersMatchTable(t.db);
  });

  it('logs one structured line per completed batch with worker, job, type and timestamps; failures with their stack', async () => {
    await enqueueMany(t.db, [
      { type: 'example.echo', payload: 1 },
      { type: 'example.flaky', payload: { failTimes: 5, permanent: true } },
    ]);
    const sink = logSink();
    const consumer = createHandler({ db: t.db, env: { ...quiet, LOG_LEVEL: 'info' }, logStream: sink });
    const ctx = fakeContext(10_000);
    await consumer(schedulerEvent, ctx);
    const lines = sink.lines.map((l) => JSON.parse(l));
    const done = lines.find((l) => l.message === 'jobs completed');
    expect(done).toMatchObject({ worker: ctx.awsRequestId, count: 1, function_request_id: ctx.awsRequestId });
    expect(done.jobs[0]).toMatchObject({ type: 'example.echo' });
    expect(done.jobs[0]).toHaveProperty('claimedAt');
    expect(done.jobs[0]).toHaveProperty('startedAt');
    expect(done.jobs[0]).toHaveProperty('completedAt');
    const failed = lines.find((l) => l.message === 'job failed');
    expect(failed).toMatchObject({ worker: ctx.awsRequestId, type: 'example.flaky', final: true });
    expect(failed.error.stack).toContain('flaky failure');
  });

  it('releases jobs longer than the remaining time without consuming an attempt', async () => {
    const [a, b] = await enqueueMany(t.db, [
      { type: 'example.sleep', payload: { ms: 60_000 } },
      { type: 'example.sleep', payload: { ms: 60_000 } },
    ]);
    const consumer = createHandler({
      db: t.db,
      env: { ...quiet, CONSUMER_CONCURRENCY: '1' },
      logStream: logSink(),
    });
    const summary = await consumer(schedulerEvent, fakeContext(2500));
    expect(summary).toMatchObject({ released: 2, completed: 0, exitReason: 'deadline' });
    for (const r of [a!, b!])
      expect(await getJob(t.db, r.job.id)).toMatchObject({ status: 'queued', attempts: 0, locked_by: null });
  });

  it('a task that ignores its signal past the deadline is abandoned, then recovered by the reaper after its lease', async () => {
    let release: () => void = () => {};
    const stubborn = defineTask({
      type: 'test.stubborn',
      schema: z.unknown(),
      run: () =>
        new Promise((resolve) => {
          release = () => resolve('late');
        }),
    });
    const registry = createRegistry().register(stubborn);
    const [{ job }] = (await enqueueMany(t.db, [{ type: 'test.stubborn', payload: null }])) as unknown as [
      { job: { id: string } },
    ];
    const consumer = createHandler({
      db: t.db,
      registry,
      env: { ...quiet, LEASE_SECONDS: '2' },
      logStream: logSink(),
    });
    // 8 s: room for the claim and the start on a loaded machine (a 2 s invocation keeps 1 s
    // for claiming, which a busy CI run could miss: then nothing runs and nothing is abandoned).
    const summary = await consumer(schedulerEvent, fakeContext(8000));
    expect(summary).toMatchObject({ claimed: 1, abandoned: 1, released: 0 });
    expect(await getJob(t.db, job.id)).toMatchObject({ status: 'running', attempts: 1 });
    // The lease (2 s) is no longer renewed: the reaper recovers the job once it has expired.
    const reaper = createReaper({ db: t.db, env: quiet, logStream: logSink() });
    let recovered = 0;
    await expect
      .poll(async () => (recovered += (await reaper(schedulerEvent, fakeContext(10_000))).recovered), {
        timeout: 30_000,
        interval: 500,
      })
      .toBe(1);
    expect(await getJob(t.db, job.id)).toMatchObject({ status: 'queued', attempts: 1 });
    release();
    expect((await readCounters(t.db)).totals.recovered).toBe(1);
  });

  it('renews the lease of a task running longer than LEASE_SECONDS so it is not reclaimed', async () => {
    const [{ job }] = (await enqueueMany(t.db, [
      { type: 'example.sleep', payload: { ms: 3500 } },
    ])) as unknown as [{ job: { id: string } }];
    const consumer = createHandler({ db: t.db, env: { ...quiet, LEASE_SECONDS: '2' }, logStream: logSink() });
    const reaper = createReaper({ db: t.db, env: quiet, logStream: logSink() });
    const running = consumer(schedulerEvent, fakeContext(15_000));
    let recovered = 0;
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 600));
      recovered += (await reaper(schedulerEvent, fakeContext(5000))).recovered;
    }
    const summary = await running;
    expect(recovered).toBe(0);
    expect(summary).toMatchObject({ completed: 1, lost: 0 });
    expect(await getJob(t.db, job.id)).toMatchObject({ status: 'completed', attempts: 1, lease_token: '1' });
  });

  it('honours paused queues and QUEUES', async () => {
    await enqueueMany(t.db, [
      { type: 'example.echo', queue: 'a' },
      { type: 'example.echo', queue: 'b' },
      { type: 'example.echo', queue: 'c' },
    ]);
    await pauseQueue(t.db, 'b', 'test');
    const consumer = createHandler({ db: t.db, env: { ...quiet, QUEUES: 'a,b' }, logStream: logSink() });
    const summary = await consumer(schedulerEvent, fakeContext(5000));
    expect(summary.completed).toBe(1);
    const { rows } = await t.db.query<{ queue: string; status: string }>(
      'SELECT queue, status FROM jobs ORDER BY queue',
    );
    expect(rows).toEqual([
      { queue: 'a', status: 'completed' },
      { queue: 'b', status: 'queued' },
      { queue: 'c', status: 'queued' },
    ]);
  });

  it('fans out at most CONSUMER_FANOUT_MAX async invocations when it leaves a backlog', async () => {
    await enqueueMany(
      t.db,
      Array.from({ length: 30 }, () => ({ type: 'example.sleep', payload: { ms: 400 } })),
    );
    const lambda = mockClient(LambdaClient);
    lambda.on(InvokeCommand).resolves({ StatusCode: 202 });
    const consumer = createHandler({
      db: t.db,
      lambda: new LambdaClient({ region: 'us-east-1' }),
      env: {
        ...quiet,
        BATCH_SIZE: '5',
        CONSUMER_CONCURRENCY: '5',
        CONSUMER_FANOUT_MAX: '3',
        CONSUMER_FUNCTION_NAME: 'dte-consumer',
      },
      logStream: logSink(),
    });
    const summary = await consumer(schedulerEvent, fakeContext(2500));
    expect(summary.fannedOut).toBe(3);
    const calls = lambda.commandCalls(InvokeCommand);
    expect(calls).toHaveLength(3);
    expect(calls[0]!.args[0].input).toMatchObject({ FunctionName: 'dte-consumer', InvocationType: 'Event' });
    // A fan-out invocation does not fan out again.
    lambda.resetHistory();
    const again = await consumer({ fanoutDepth: 1 }, fakeContext(2500));
    expect(again.fannedOut).toBe(0);
    expect(lambda.commandCalls(InvokeCommand)).toHaveLength(0);
    lambda.restore();
    await t.db.query("UPDATE jobs SET status = 'completed' WHERE status <> 'completed'");
  });

  for (const advisory of [false, true]) {
    it(`many concurrent consumers complete every job exactly once (${advisory ? 'advisory' : 'default'} claim path)`, async () => {
      await enqueueMany(
        t.db,
        Array.from({ length: 500 }, (_, i) => ({ type: 'example.echo', payload: i })),
      );
      const consumers = Array.from({ length: 4 }, () =>
        createHandler({
          db: t.connect({ max: 1 }),
          env: { ...quiet, USE_ADVISORY_LOCKS: advisory ? '1' : '0' },
          logStream: logSink(),
        }),
      );
      const summaries = await Promise.all(consumers.map((c) => c(schedulerEvent, fakeContext(20_000))));
      expect(summaries.reduce((n, s) => n + s.completed, 0)).toBe(500);
      await expectAllTerminal(t.db);
      await expectCountersMatchTable(t.db);
      const { rows } = await t.db.query<{ n: string }>(
        'SELECT count(*) AS n FROM jobs WHERE lease_token <> 1 OR attempts <> 1',
      );
      expect(Number(rows[0]!.n)).toBe(0);
    });
  }
});
