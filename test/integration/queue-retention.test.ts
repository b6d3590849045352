import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ApiHandler, createHandler as createApi } from '../../functions/api.ts';
import { createHandler as createConsumer } from '../../functions/consumer.ts';
import type { Viewer } from '../../functions/engine/access.ts';
import {
  ConflictError,
  type EnqueueRequest,
  enqueue,
  enqueueMany,
  listQueueRetention,
  readCounters,
  setRetention,
  ValidationError,
} from '../../functions/engine/index.ts';
import { ensureFinishedPartitions, pruneFinished } from '../../functions/engine/sql/pruneFinished.ts';
import { apiEvent, fakeContext, logSink, schedulerEvent } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { taskctl } from './taskctl.helpers.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are read field by field in assertions
type Res = APIGatewayProxyStructuredResultV2 & { json: any };

const quiet = { LOG_LEVEL: 'warn', CONSUMER_IDLE_EXIT_MS: '200', CONSUMER_POLL_MS: '20' };
const operator = { actor: 'ops@example.com', reason: 'ephemeral metrics' };

describe.runIf(await postgresAvailable())('per-queue retention (issue 21, item 5)', () => {
  let t: TestSchema;
  let api: ApiHandler;
  const call = async (method: string, path: string, body?: unknown): Promise<Res> => {
    const res = (await api(apiEvent(method, path, body), fakeContext())) as APIGatewayProxyStructuredResultV2;
    return { ...res, json: res.body ? JSON.parse(res.body) : undefined };
  };
  /** The real consumer handler, run until it is idle: every due job is completed or failed. */
  const drain = () =>
    createConsumer({ db: t.db, env: { ...quiet, CONSUMER_IDLE_EXIT_MS: '1000' }, logStream: logSink() })(
      schedulerEvent,
      fakeContext(30_000),
    );
  const rowsOf = async (queue: string) =>
    (
      await t.db.query<{ status: string; n: number }>(
        'SELECT status, count(*)::int AS n FROM jobs WHERE queue = $1 GROUP BY status ORDER BY status',
        [queue],
      )
    ).rows;
  const keyRow = async (key: string) =>
    (await t.db.query<{ job_id: string }>('SELECT job_id FROM job_keys WHERE idempotency_key = $1', [key]))
      .rows[0];

  beforeAll(async () => {
    t = await createTestSchema('retention');
    api = createApi({ db: t.db, env: { LOG_LEVEL: 'warn' }, logStream: logSink() });
  });
  afterAll(async () => t?.drop());
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas, job_audit');
    // A prune with a cutoff in the future drops today's partition; completions need it back.
    await ensureFinishedPartitions(t.db, 1);
  });

  it("the consumer deletes a 'delete' queue's completed jobs, keeps its failed ones and counts all; a 'keep' queue keeps its rows", async () => {
    // Prepare: 40 echo jobs in each queue, and one job that fails for good in the ephemeral one
    await setRetention(t.db, 'ephemeral', 'delete', operator);
    const echoes = (queue: string) =>
      Array.from({ length: 40 }, (_, i) => ({ type: 'example.echo', payload: { i }, queue }));
    await enqueueMany(t.db, [
      ...echoes('ephemeral'),
      ...echoes('durable'),
      { type: 'example.flaky', payload: { failTimes: 1, permanent: true }, queue: 'ephemeral' },
    ]);
    // Act
    const summary = await drain();
    // Assess
    expect(summary).toMatchObject({ completed: 80, failed: 1, lost: 0 });
    expect(await rowsOf('ephemeral')).toEqual([{ status: 'failed', n: 1 }]);
    expect(await rowsOf('durable')).toEqual([{ status: 'completed', n: 40 }]);
    const counters = await readCounters(t.db);
    expect(counters.totals).toMatchObject({ submitted: 81, completed: 80, failed: 1 });
    expect(counters.running).toBe(0);
  });

  it('a keyed job deleted on completion replays with its id and status completed; another request under its key is a 409', async () => {
    // Prepare: a keyed job in a 'delete' queue, run to completion (its row is gone)
    await setRetention(t.db, 'ephemeral', 'delete', operator);
    const req: EnqueueRequest = {
      type: 'example.echo',
      payload: { order: 7 },
      queue: 'ephemeral',
      idempotencyKey: 'order-7',
    };
    const first = await enqueue(t.db, req);
    expect((await drain()).completed).toBe(1);
    expect(await rowsOf('ephemeral')).toEqual([]);
    expect(await keyRow('order-7')).toEqual({ job_id: first.job.id });
    // Act
    const replay = await enqueue(t.db, req);
    const http = await call('POST', '/jobs', req);
    const other = await call('POST', '/jobs', { ...req, payload: { order: 8 } });
    // Assess: the same job, completed, nothing new stored or counted
    expect(replay.created).toBe(false);
    expect(replay.job).toMatchObject({
      id: first.job.id,
      status: 'completed',
      queue: 'ephemeral',
      type: 'example.echo',
      payload: { order: 7 },
      attempts: null,
      result: null,
      idempotencyKey: 'order-7',
    });
    expect(replay.job.createdAt).toEqual(first.job.createdAt);
    expect(http.statusCode).toBe(200);
    expect(http.json).toMatchObject({ id: first.job.id, status: 'completed', attempts: null });
    expect(other.statusCode).toBe(409);
    expect(other.json.error).toMatchObject({
      code: 'idempotency_conflict',
      details: { jobId: first.job.id },
    });
    expect(await rowsOf('ephemeral')).toEqual([]);
    expect((await readCounters(t.db)).totals).toMatchObject({ submitted: 1, completed: 1 });
  });

  it("with creator-only visibility a gone job's key replays to its creator and is refused to another caller", async () => {
    // Prepare
    await setRetention(t.db, 'ephemeral', 'delete', operator);
    const alice: Viewer = { caller: 'arn:aws:iam::1:user/alice', creatorOnly: true };
    const bob: Viewer = { caller: 'arn:aws:iam::1:user/bob', creatorOnly: true };
    const req: EnqueueRequest = {
      type: 'example.echo',
      payload: 1,
      queue: 'ephemeral',
      idempotencyKey: 'k-a',
    };
    const mine = await enqueue(t.db, req, alice);
    await drain();
    expect(await rowsOf('ephemeral')).toEqual([]);
    // Act
    const again = await enqueue(t.db, req, alice);
    const theirs = enqueue(t.db, req, bob);
    const theirsDifferent = enqueue(t.db, { ...req, payload: 2 }, bob);
    // Assess: bob learns neither the id nor that the request matched
    expect(again.job).toMatchObject({ id: mine.job.id, status: 'completed' });
    await expect(theirs).rejects.toBeInstanceOf(ConflictError);
    await expect(theirs).rejects.toThrow(/another caller's job/);
    await expect(theirsDifferent).rejects.toMatchObject({ code: 'idempotency_conflict' });
    await expect(theirsDifferent).rejects.not.toMatchObject({ details: { jobId: mine.job.id } });
  });

  it("jobs_prune_finished keeps a gone job's key within the retention and removes it past it; the key is then free", async () => {
    // Prepare: a gone keyed job, and a keyed job still queued (its queue paused)
    await setRetention(t.db, 'ephemeral', 'delete', operator);
    const req: EnqueueRequest = {
      type: 'example.echo',
      payload: 1,
      queue: 'ephemeral',
      idempotencyKey: 'gone',
    };
    const first = await enqueue(t.db, req);
    await drain();
    await t.db.query(`INSERT INTO queues (name, paused) VALUES ('held', true)`);
    const held = await enqueue(t.db, { type: 'example.echo', queue: 'held', idempotencyKey: 'held' });
    // Act 1: the reaper's prune with a retention of 7 days
    await pruneFinished(t.db, 7, 1000);
    // Assess 1
    expect(await keyRow('gone')).toEqual({ job_id: first.job.id });
    // Act 2: a cutoff one day in the future puts the key past the retention
    await pruneFinished(t.db, -1, 1000);
    // Assess 2: the gone job's key is pruned, the queued job's key stays; a new request makes a new job
    expect(await keyRow('gone')).toBeUndefined();
    expect(await keyRow('held')).toEqual({ job_id: held.job.id });
    const fresh = await enqueue(t.db, req);
    expect(fresh.created).toBe(true);
    expect(fresh.job.id).not.toBe(first.job.id);
  });

  it('setting a retention is audited (taskctl, API and dashboard share it); bad values are refused and store nothing', async () => {
    // Prepare
    await setRetention(t.db, 'metrics', 'delete', operator);
    // Act
    const back = await call('POST', '/queues/metrics/retention', { retention: 'keep' });
    const set = await call('POST', '/queues/metrics/retention', { retention: 'delete' });
    const bad = await Promise.all(
      [{ retention: 'forever' }, { retention: null }, {}, { retention: 'delete', days: 3 }].map((b) =>
        call('POST', '/queues/other/retention', b),
      ),
    );
    const badName = await call('POST', '/queues/bad%20name/retention', { retention: 'delete' });
    // Assess
    expect(back.statusCode).toBe(200);
    expect(back.json).toEqual({ name: 'metrics', retention: 'keep' });
    expect(set.json).toEqual({ name: 'metrics', retention: 'delete' });
    expect((await call('GET', '/queues/retention')).json).toEqual({
      queues: [{ name: 'metrics', retention: 'delete' }],
    });
    expect(await listQueueRetention(t.db)).toEqual([{ name: 'metrics', retention: 'delete' }]);
    for (const res of [...bad, badName]) {
      expect(res.statusCode, JSON.stringify(res.json)).toBe(400);
      expect(res.json.error.message).toMatch(/retention|unknown field|queue name/);
    }
    await expect(
      t.db.query(`SELECT * FROM queue_set_retention_audited('other', 'forever', 'psql', NULL)`),
    ).rejects.toMatchObject({ code: '22023' });
    await expect(setRetention(t.db, 'other', 'forever' as 'keep', operator)).rejects.toBeInstanceOf(
      ValidationError,
    );
    expect((await t.db.query(`SELECT * FROM queues WHERE name <> 'metrics'`)).rows).toEqual([]);
    const { rows: audit } = await t.db.query(
      `SELECT queue, action, actor, reason, details FROM job_audit ORDER BY id`,
    );
    expect(audit).toEqual([
      {
        queue: 'metrics',
        action: 'set-retention',
        actor: operator.actor,
        reason: operator.reason,
        details: { retention: 'delete', previous: 'keep' },
      },
      {
        queue: 'metrics',
        action: 'set-retention',
        actor: 'api',
        reason: null,
        details: { retention: 'keep', previous: 'delete' },
      },
      {
        queue: 'metrics',
        action: 'set-retention',
        actor: 'api',
        reason: null,
        details: { retention: 'delete', previous: 'keep' },
      },
    ]);
  });

  it('taskctl queue set-retention sets it (audited with --reason), status lists it; a bad value or queue exits 2', async () => {
    // Five taskctl processes (a tsx start each has taken 10 s under load): the bound is generous.
    // Act
    const set = await taskctl(t.url, ['queue', 'set-retention', 'metrics', 'delete', '--reason', 'INC-88'], {
      TASKCTL_ACTOR: 'ops',
    });
    const status = await taskctl(t.url, ['status']);
    const bad = await Promise.all([
      taskctl(t.url, ['queue', 'set-retention', 'other', 'forever']),
      taskctl(t.url, ['queue', 'set-retention', 'other']),
      taskctl(t.url, ['queue', 'set-retention', 'bad name', 'delete']),
    ]);
    // Assess
    expect(set.code, set.stderr).toBe(0);
    expect(set.json).toEqual({ name: 'metrics', retention: 'delete' });
    expect(status.json.queueRetention).toEqual([{ name: 'metrics', retention: 'delete' }]);
    for (const r of bad) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/retention|queue/);
    }
    expect((await t.db.query(`SELECT * FROM queues WHERE name <> 'metrics'`)).rows).toEqual([]);
    const { rows: audit } = await t.db.query('SELECT queue, action, actor, reason, details FROM job_audit');
    expect(audit).toEqual([
      {
        queue: 'metrics',
        action: 'set-retention',
        actor: 'ops',
        reason: 'INC-88',
        details: { retention: 'delete', previous: 'keep' },
      },
    ]);
  }, 300_000);
});
