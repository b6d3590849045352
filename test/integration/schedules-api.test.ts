import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ApiHandler, createHandler } from '../../functions/api.ts';
import { apiEvent, fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are read field by field in assertions
type Res = APIGatewayProxyStructuredResultV2 & { json: any };

describe.runIf(await postgresAvailable())('schedules and queue limits through the API (issue 18)', () => {
  let t: TestSchema;
  let api: ApiHandler;
  const call = async (method: string, path: string, body?: unknown): Promise<Res> => {
    const res = (await api(apiEvent(method, path, body), fakeContext())) as APIGatewayProxyStructuredResultV2;
    return { ...res, json: res.body ? JSON.parse(res.body) : undefined };
  };
  beforeAll(async () => {
    t = await createTestSchema('schedapi');
    api = createHandler({ db: t.db, env: { LOG_LEVEL: 'warn' }, logStream: logSink() });
  });
  afterAll(async () => t?.drop());
  beforeEach(async () => {
    await t.db.query('TRUNCATE schedules, queues');
  });

  it('POST, GET, pause, resume and DELETE a schedule', async () => {
    const created = await call('POST', '/schedules', {
      name: 'nightly',
      cron: '0 3 * * *',
      timezone: 'Europe/Berlin',
      type: 'example.sleep',
      payload: { ms: 1 },
      queue: 'reports',
    });
    expect(created.statusCode).toBe(201);
    expect(created.json).toMatchObject({
      name: 'nightly',
      timezone: 'Europe/Berlin',
      enabled: true,
      source: 'api',
      catchUp: 'latest',
    });
    expect((await call('GET', '/schedules')).json.schedules.map((s: { name: string }) => s.name)).toEqual([
      'nightly',
    ]);
    expect((await call('GET', '/schedules/nightly')).json.queue).toBe('reports');
    expect((await call('POST', '/schedules/nightly/pause')).json.enabled).toBe(false);
    expect((await call('POST', '/schedules/nightly/resume')).json.enabled).toBe(true);
    const replaced = await call('POST', '/schedules', {
      name: 'nightly',
      cron: '0 4 * * *',
      type: 'example.echo',
    });
    expect(replaced.statusCode).toBe(200);
    expect((await call('DELETE', '/schedules/nightly')).statusCode).toBe(200);
    expect((await call('GET', '/schedules/nightly')).statusCode).toBe(404);
    expect((await call('DELETE', '/schedules/nightly')).statusCode).toBe(404);
  });

  it.each([
    [{ name: 'x', cron: '0 3 * *', type: 'example.echo' }, 400, 'invalid_cron'],
    [{ name: 'x', cron: '0 3 * * *', timezone: 'Moon/Base', type: 'example.echo' }, 400, 'invalid_timezone'],
    [{ name: 'x', cron: '0 3 * * *', type: 'no.such' }, 422, 'unknown_task_type'],
    [{ name: 'x', cron: '0 3 * * *', type: 'example.sleep', payload: { ms: -5 } }, 422, 'invalid_payload'],
    [{ name: 'x', cron: '0 3 * * *', type: 'example.echo', colour: 'red' }, 400, 'invalid_request'],
    [[1, 2], 400, 'invalid_request'],
  ])('refuses schedule %j with %i %s and stores nothing', async (body, status, code) => {
    const res = await call('POST', '/schedules', body);
    expect(res.statusCode).toBe(status);
    expect(res.json.error.code).toBe(code);
    expect(typeof res.json.error.message).toBe('string');
    const { rows } = await t.db.query('SELECT * FROM schedules');
    expect(rows).toEqual([]);
  });

  it('POST /queues/{name}/limits sets and removes limits; bad limits are 400 and store nothing', async () => {
    const set = await call('POST', '/queues/emails/limits', { maxRunning: 5, rate: 20 });
    expect(set.statusCode, JSON.stringify(set.json)).toBe(200);
    expect(set.json).toEqual({ name: 'emails', maxRunning: 5, ratePerSecond: 20, rateBurst: 20 });
    expect((await call('GET', '/queues/limits')).json.queues).toHaveLength(1);
    for (const body of [{ maxRunning: -1 }, { rate: -2 }, { maxRunning: '3' }, { burst: 2 }, { max: 1 }]) {
      const res = await call('POST', '/queues/other/limits', body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json.error.message).toMatch(/maxRunning|rate|burst|unknown field/);
    }
    expect((await t.db.query(`SELECT * FROM queues WHERE name = 'other'`)).rows).toEqual([]);
    const removed = await call('POST', '/queues/emails/limits', { maxRunning: null, rate: null });
    expect(removed.json).toEqual({ name: 'emails', maxRunning: null, ratePerSecond: null, rateBurst: null });
  });
});
