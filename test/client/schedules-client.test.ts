import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../functions/api.ts';
import {
  ConflictError,
  createClient,
  NotFoundError,
  type ScheduleDefinition,
  type TaskEngineClient,
  ValidationError,
} from '../../functions/client/index.ts';
import { DatabaseUnavailableError, type Db } from '../../functions/engine/index.ts';
import { syncCodeSchedules } from '../../functions/engine/schedules.ts';
import { sleep as sleepTask } from '../../functions/tasks/examples.ts';
import { createDashboard } from '../../tools/dashboard/index.ts';
import { createLocalHttp } from '../../tools/local-http.ts';
import { createLocalMetrics } from '../../tools/local-metrics.ts';
import { fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { type ApiServer, startApiServer } from './api-server.ts';

const FAST_RETRY = { baseDelayMs: 5, maxDelayMs: 20, deadlineMs: 20_000, maxAttempts: 6 };

/** The database fails its next `n` statements as a refused connection would: nothing runs. */
function flakyDb(db: Db): Db & { failNext(n: number): void } {
  let failures = 0;
  const gate = () => {
    if (failures > 0) {
      failures--;
      throw new DatabaseUnavailableError('connection refused (injected)');
    }
  };
  return {
    query: async (text, values) => {
      gate();
      return db.query(text, values);
    },
    transaction: async (fn) => {
      gate();
      return db.transaction(fn);
    },
    end: () => db.end(),
    failNext(n) {
      failures = n;
    },
  };
}

const catchIt = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );
const lines = (server: ApiServer) => server.seen.map((s) => `${s.method} ${s.path} ${s.status}`);

describe.runIf(await postgresAvailable())('the client: schedules and queue limits over HTTP', () => {
  let t: TestSchema;
  let db: ReturnType<typeof flakyDb>;
  let open: ApiServer;
  let client: TaskEngineClient;

  beforeAll(async () => {
    t = await createTestSchema('client_sched');
    db = flakyDb(t.db);
    const api = createHandler({ db, env: { LOG_LEVEL: 'silent' }, logStream: logSink() });
    open = await startApiServer(api);
    client = createClient({ url: open.url, auth: 'none', retry: FAST_RETRY });
  });
  afterAll(async () => {
    await open?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    await t.db.query('TRUNCATE schedules, queues');
    db.failNext(0);
    open.fault = undefined;
    open.seen.length = 0;
  });

  it('put, get, list, pause, resume, replace and remove a schedule round trip', async () => {
    // Act
    const created = await client.schedules.put({
      name: 'nightly',
      cron: '0 3 * * *',
      timezone: 'Europe/Berlin',
      type: 'example.sleep',
      payload: { ms: 1 },
      queue: 'reports',
      catchUp: 'skip',
      // A field the API does not take (here from a read-back view) is not sent: the API would refuse it.
      nextAt: null,
    } as ScheduleDefinition);
    const read = await client.schedules.get('nightly');
    const listed = await client.schedules.list();
    const paused = await client.schedules.pause('nightly');
    const resumed = await client.schedules.resume('nightly');
    const replaced = await client.schedules.put({ name: 'nightly', cron: '0 4 * * *', type: 'example.echo' });
    const removed = await client.schedules.remove('nightly');
    const gone = await catchIt(client.schedules.get('nightly'));

    // Assess
    expect(created).toMatchObject({
      name: 'nightly',
      cron: '0 3 * * *',
      timezone: 'Europe/Berlin',
      type: 'example.sleep',
      payload: { ms: 1 },
      queue: 'reports',
      enabled: true,
      catchUp: 'skip',
      source: 'api',
      nextAt: null,
    });
    expect(read).toEqual(created);
    expect(listed).toEqual([created]);
    expect(paused.enabled).toBe(false);
    expect(resumed.enabled).toBe(true);
    expect(replaced).toMatchObject({
      cron: '0 4 * * *',
      type: 'example.echo',
      timezone: 'UTC',
      queue: 'default',
    });
    expect(removed).toEqual({ name: 'nightly', removed: true });
    expect(gone).toBeInstanceOf(NotFoundError);
    expect(gone).toMatchObject({ status: 404, code: 'not_found' });
    expect(Object.keys(JSON.parse(open.seen[0]!.body)).sort()).toEqual(
      ['catchUp', 'cron', 'name', 'payload', 'queue', 'timezone', 'type'].sort(),
    );
    expect(lines(open).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual([
      'POST /schedules',
      'GET /schedules/nightly',
      'GET /schedules',
      'POST /schedules/nightly/pause',
      'POST /schedules/nightly/resume',
      'POST /schedules',
      'DELETE /schedules/nightly',
      'GET /schedules/nightly',
    ]);
    expect((await t.db.query('SELECT name FROM schedules')).rows).toEqual([]);
  });

  it('queue limits: set, list, change one field, remove with null', async () => {
    const set = await client.queues.setLimits('reports', { maxRunning: 3, rate: 2, burst: 4 });
    const other = await client.queues.setLimits('emails', { maxRunning: 10 });
    const listed = await client.queues.limits();
    const changed = await client.queues.setLimits('reports', { maxRunning: 5 });
    const removed = await client.queues.setLimits('reports', { maxRunning: null, rate: null });
    const after = await client.queues.limits();

    expect(set).toEqual({ name: 'reports', maxRunning: 3, ratePerSecond: 2, rateBurst: 4 });
    expect(listed).toEqual([{ name: 'emails', maxRunning: 10, ratePerSecond: null, rateBurst: null }, set]);
    expect(other.maxRunning).toBe(10);
    expect(changed).toEqual({ name: 'reports', maxRunning: 5, ratePerSecond: 2, rateBurst: 4 });
    expect(removed).toMatchObject({ name: 'reports', maxRunning: null, ratePerSecond: null });
    expect(after.map((q) => q.name)).toEqual(['emails']);
  });

  it('queue retention: set, list, set back to keep; a bad value is refused before sending', async () => {
    const set = await client.queues.setRetention('metrics', 'delete');
    const listed = await client.queues.retention();
    const back = await client.queues.setRetention('metrics', 'keep');
    const after = await client.queues.retention();
    const bad = await catchIt(client.queues.setRetention('metrics', 'forever' as 'keep'));

    expect(set).toEqual({ name: 'metrics', retention: 'delete' });
    expect(listed).toEqual([set]);
    expect(back).toEqual({ name: 'metrics', retention: 'keep' });
    expect(after).toEqual([]);
    expect(bad).toBeInstanceOf(TypeError);
  });

  it('maps the schedule and limit errors to the typed errors, with the field, and retries none', async () => {
    await syncCodeSchedules(t.db, [{ name: 'in-code', cron: '0 1 * * *', type: 'example.echo' }]);
    const def = { name: 'bad', cron: '0 3 * * *', type: 'example.echo' };

    const badCron = await catchIt(client.schedules.put({ ...def, cron: 'every night' }));
    const badFields = await catchIt(client.schedules.put({ ...def, cron: '61 3 * * *' }));
    const badZone = await catchIt(client.schedules.put({ ...def, timezone: 'Mars/Olympus' }));
    const unknownType = await catchIt(client.schedules.put({ ...def, type: 'no.such.task' }));
    const badPayload = await catchIt(
      client.schedules.put({ ...def, type: 'example.sleep', payload: { ms: -1 } }),
    );
    const editCode = await catchIt(client.schedules.put({ ...def, name: 'in-code' }));
    const removeCode = await catchIt(client.schedules.remove('in-code'));
    const removeMissing = await catchIt(client.schedules.remove('never-was'));
    const pauseMissing = await catchIt(client.schedules.pause('never-was'));
    const badLimit = await catchIt(client.queues.setLimits('q', { maxRunning: -1 }));
    const burstOnly = await catchIt(client.queues.setLimits('q', { maxRunning: 1, burst: 3 }));

    expect(badCron).toBeInstanceOf(ValidationError);
    expect(badCron).toMatchObject({ status: 400, code: 'invalid_cron', field: 'cron' });
    expect(badFields).toMatchObject({ status: 400, code: 'invalid_cron', field: 'cron' });
    expect(badZone).toBeInstanceOf(ValidationError);
    expect(badZone).toMatchObject({ status: 400, code: 'invalid_timezone', field: 'timezone' });
    expect(unknownType).toBeInstanceOf(ValidationError);
    expect(unknownType).toMatchObject({ status: 422, code: 'unknown_task_type' });
    expect(badPayload).toMatchObject({ status: 422, code: 'invalid_payload', field: 'payload' });
    expect(editCode).toBeInstanceOf(ConflictError);
    expect(editCode).toMatchObject({ status: 409, code: 'schedule_defined_in_code' });
    expect(removeCode).toBeInstanceOf(ConflictError);
    expect(removeCode).toMatchObject({ status: 409, code: 'schedule_defined_in_code' });
    expect(removeMissing).toBeInstanceOf(NotFoundError);
    expect(removeMissing).toMatchObject({ status: 404, code: 'not_found' });
    expect(pauseMissing).toBeInstanceOf(NotFoundError);
    expect(badLimit).toBeInstanceOf(ValidationError);
    expect(badLimit).toMatchObject({ status: 400, code: 'validation_error' });
    expect(burstOnly).toMatchObject({ status: 400, code: 'validation_error' });
    expect(open.seen).toHaveLength(11);
    expect((await t.db.query('SELECT name FROM schedules ORDER BY name')).rows).toEqual([
      { name: 'in-code' },
    ]);
  });

  it('names the API could not route are refused before sending, with the field', async () => {
    const slash = await catchIt(client.schedules.get('a/b'));
    const dots = await catchIt(client.schedules.remove('..'));
    const queue = await catchIt(client.queues.setLimits('', { maxRunning: 1 }));

    for (const err of [slash, dots, queue]) {
      expect(err).toBeInstanceOf(ValidationError);
      expect(err).toMatchObject({ status: undefined, code: 'invalid_request', field: 'name' });
    }
    expect(open.seen).toHaveLength(0);
  });

  it('a typed put checks the payload against the task schema before sending', async () => {
    const ok = await client.schedules.put(sleepTask, {
      name: 'typed',
      cron: '*/5 * * * *',
      payload: { ms: 2 },
    });
    const before = open.seen.length;
    const wrong = await catchIt(
      client.schedules.put(sleepTask, { name: 'typed', cron: '*/5 * * * *', payload: { ms: 'x' } as never }),
    );

    expect(ok).toMatchObject({ name: 'typed', type: 'example.sleep', payload: { ms: 2 } });
    expect(wrong).toBeInstanceOf(ValidationError);
    expect(wrong).toMatchObject({ code: 'invalid_payload', field: 'payload.ms', status: undefined });
    expect(open.seen.length).toBe(before);
  });

  it('a remove whose answer was lost reports success on the retry that finds it gone', async () => {
    await client.schedules.put({ name: 'doomed', cron: '0 3 * * *', type: 'example.echo' });
    open.seen.length = 0;
    open.fault = (s) => (s.n === 1 ? { kind: 'reset' } : undefined);

    const removed = await client.schedules.remove('doomed');

    expect(removed).toEqual({ name: 'doomed', removed: true });
    expect(lines(open)).toEqual(['DELETE /schedules/doomed 200', 'DELETE /schedules/doomed 404']);
    expect((await t.db.query('SELECT name FROM schedules')).rows).toEqual([]);
  });

  it('a 404 after a "nothing was done" 503 is still a NotFoundError: only an unknown outcome turns it into success', async () => {
    db.failNext(1);

    const missing = await catchIt(client.schedules.remove('never-was'));

    expect(missing).toBeInstanceOf(NotFoundError);
    expect(lines(open)).toEqual(['DELETE /schedules/never-was 503', 'DELETE /schedules/never-was 404']);
  });

  it('put, pause and setLimits whose answers were lost are retried into the same state', async () => {
    const def = { name: 'retried', cron: '0 3 * * *', type: 'example.echo', payload: { n: 1 } };
    open.fault = (s) => (s.n === 1 || s.n === 3 || s.n === 5 ? { kind: 'reset' } : undefined);

    const put = await client.schedules.put(def);
    const paused = await client.schedules.pause('retried');
    const limits = await client.queues.setLimits('reports', { maxRunning: 2 });

    expect(lines(open)).toEqual([
      'POST /schedules 201',
      'POST /schedules 200',
      'POST /schedules/retried/pause 200',
      'POST /schedules/retried/pause 200',
      'POST /queues/reports/limits 200',
      'POST /queues/reports/limits 200',
    ]);
    expect(put).toMatchObject({ ...def, enabled: true });
    expect(paused.enabled).toBe(false);
    expect(limits).toMatchObject({ name: 'reports', maxRunning: 2 });
    expect((await t.db.query('SELECT count(*)::int AS n FROM schedules')).rows[0]).toEqual({ n: 1 });
  });

  it('reads are retried through 503 database_unavailable', async () => {
    await client.schedules.put({ name: 'read-me', cron: '0 3 * * *', type: 'example.echo' });
    open.seen.length = 0;
    db.failNext(2);

    const listed = await client.schedules.list();

    expect(listed.map((s) => s.name)).toEqual(['read-me']);
    expect(open.seen.map((s) => s.status)).toEqual([503, 503, 200]);
  });
});

describe.runIf(await postgresAvailable())(
  "the client's schedule changes against the local engine's front",
  () => {
    let t: TestSchema;
    let server: Server;
    let client: TaskEngineClient;

    beforeAll(async () => {
      t = await createTestSchema('client_sched_local');
      server = createServer(
        createLocalHttp({
          api: createHandler({ db: t.db, env: { LOG_LEVEL: 'silent' }, logStream: logSink() }),
          dashboard: createDashboard({ db: t.db, token: 'client-sched-test-token-0123456789' }),
          metrics: createLocalMetrics(t.db),
          context: () => fakeContext(),
        }),
      );
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      client = createClient({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        auth: 'none',
        retry: FAST_RETRY,
      });
    });
    afterAll(async () => {
      server?.closeAllConnections();
      await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
      await t?.drop();
    });

    it('bodiless pause, resume and DELETE pass its JSON Content-Type guard', async () => {
      await client.schedules.put({ name: 'local', cron: '0 3 * * *', type: 'example.echo' });

      const paused = await client.schedules.pause('local');
      const resumed = await client.schedules.resume('local');
      const removed = await client.schedules.remove('local');

      expect(paused.enabled).toBe(false);
      expect(resumed.enabled).toBe(true);
      expect(removed).toEqual({ name: 'local', removed: true });
      expect(await client.schedules.list()).toEqual([]);
    });
  },
);
