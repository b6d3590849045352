import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ApiHandler, createHandler } from '../../functions/api.ts';
import { countByStatus } from '../helpers/invariants.ts';
import { apiEvent, fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are read field by field in assertions
type Res = APIGatewayProxyStructuredResultV2 & { json: any };

describe.runIf(await postgresAvailable())('api handler (API Gateway v2 events)', () => {
  let t: TestSchema;
  let api: ApiHandler;
  const call = async (
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
    routeKey?: string,
  ): Promise<Res> => {
    const res = (await api(
      apiEvent(method, path, body, headers, routeKey),
      fakeContext(),
    )) as APIGatewayProxyStructuredResultV2;
    return { ...res, json: res.body ? JSON.parse(res.body) : undefined };
  };
  const rows = async () => Object.values(await countByStatus(t.db)).reduce((a, b) => a + b, 0);

  beforeAll(async () => {
    t = await createTestSchema('api');
    api = createHandler({
      db: t.db,
      env: { MAX_PAYLOAD_BYTES: '2048', LOG_LEVEL: 'warn' },
      logStream: logSink(),
    });
  });
  afterAll(async () => t?.drop());
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, job_counter_deltas');
  });

  it('POST /jobs stores a job and answers 201 with the job; GET /jobs/{id} reads it back', async () => {
    const created = await call('POST', '/jobs', {
      type: 'example.echo',
      payload: { hello: 'world' },
      priority: 3,
    });
    expect(created.statusCode).toBe(201);
    expect(created.json).toMatchObject({
      type: 'example.echo',
      status: 'queued',
      priority: 3,
      attempts: 0,
      maxAttempts: 5,
      queue: 'default',
    });
    expect(typeof created.json.id).toBe('string');
    const got = await call('GET', `/jobs/${created.json.id}`, undefined, {});
    expect(got.statusCode).toBe(200);
    expect(got.json).toEqual(created.json);
  });

  it('routes by routeKey and pathParameters as API Gateway sends them', async () => {
    const created = await call(
      'POST',
      '/jobs',
      { type: 'example.echo', payload: 1 },
      undefined,
      'POST /jobs',
    );
    const event = apiEvent('GET', `/jobs/${created.json.id}`, undefined, {}, 'GET /jobs/{id}');
    event.pathParameters = { id: created.json.id };
    const res = (await api(event, fakeContext())) as APIGatewayProxyStructuredResultV2;
    expect(res.statusCode).toBe(200);
  });

  it('idempotent replay: 201 then 200 with the same id; a different body with the key is 409', async () => {
    const body = { type: 'example.echo', payload: { n: 1 } };
    const first = await call('POST', '/jobs', body, {
      'Content-Type': 'application/json',
      'Idempotency-Key': 'order-42',
    });
    const again = await call('POST', '/jobs', body, {
      'content-type': 'application/json',
      'idempotency-key': 'order-42',
    });
    const other = await call(
      'POST',
      '/jobs',
      { ...body, payload: { n: 2 } },
      { 'Content-Type': 'application/json', 'Idempotency-Key': 'order-42' },
    );
    expect(first.statusCode).toBe(201);
    expect(again.statusCode).toBe(200);
    expect(again.json.id).toBe(first.json.id);
    expect(other.statusCode).toBe(409);
    expect(other.json.error.code).toBe('idempotency_conflict');
    expect(await rows()).toBe(1);
  });

  it('POST /jobs/batch stores all jobs in one go and returns them in order', async () => {
    const res = await call('POST', '/jobs/batch', {
      jobs: [
        { type: 'example.echo', payload: 1 },
        { type: 'example.sleep', payload: { ms: 1 } },
      ],
    });
    expect(res.statusCode).toBe(201);
    expect(res.json.jobs.map((j: { type: string }) => j.type)).toEqual(['example.echo', 'example.sleep']);
    expect(await rows()).toBe(2);
  });

  it('cancel: 200 for a queued job with the reason kept, 409 once terminal, 404 unknown', async () => {
    const { json: job } = await call('POST', '/jobs', { type: 'example.echo', payload: 1 });
    const res = await call('POST', `/jobs/${job.id}/cancel`, { reason: 'not needed' });
    expect(res.statusCode).toBe(200);
    expect(res.json).toMatchObject({
      status: 'failed',
      lastError: { name: 'Cancelled', message: 'not needed' },
    });
    const again = await call('POST', `/jobs/${job.id}/cancel`, undefined, {});
    expect(again.statusCode).toBe(409);
    expect(again.json.error.code).toBe('job_terminal');
    expect((await call('POST', '/jobs/999999/cancel', undefined, {})).statusCode).toBe(404);
  });

  it('GET /health answers 200 when the database is reachable', async () => {
    const res = await call('GET', '/health', undefined, {});
    expect(res.statusCode).toBe(200);
    expect(res.json).toEqual({ status: 'ok' });
  });

  // The bad-input matrix: status, error code, and no row written.
  const deep = (n: number): unknown => (n === 0 ? 'leaf' : { d: deep(n - 1) });
  const badInputs: Array<
    [string, string, string, unknown, Record<string, string> | undefined, number, string]
  > = [
    ['malformed JSON', 'POST', '/jobs', '{"type": ', undefined, 400, 'invalid_json'],
    [
      'wrong content type',
      'POST',
      '/jobs',
      'type=example.echo',
      { 'Content-Type': 'application/x-www-form-urlencoded' },
      415,
      'unsupported_media_type',
    ],
    ['missing body', 'POST', '/jobs', undefined, undefined, 400, 'missing_body'],
    ['missing type', 'POST', '/jobs', { payload: {} }, undefined, 400, 'validation_error'],
    ['type not a string', 'POST', '/jobs', { type: 42 }, undefined, 400, 'validation_error'],
    [
      'unknown type',
      'POST',
      '/jobs',
      { type: 'no.such.task', payload: {} },
      undefined,
      422,
      'unknown_task_type',
    ],
    [
      'schema violation',
      'POST',
      '/jobs',
      { type: 'example.sleep', payload: { ms: 'soon' } },
      undefined,
      422,
      'invalid_payload',
    ],
    [
      'payload over the limit',
      'POST',
      '/jobs',
      { type: 'example.echo', payload: 'x'.repeat(3000) },
      undefined,
      413,
      'payload_too_large',
    ],
    [
      'NUL in a string',
      'POST',
      '/jobs',
      { type: 'example.echo', payload: { s: 'a\u0000b' } },
      undefined,
      400,
      'validation_error',
    ],
    [
      'lone surrogate',
      'POST',
      '/jobs',
      '{"type":"example.echo","payload":{"s":"\\ud800"}}',
      undefined,
      400,
      'validation_error',
    ],
    [
      'nesting too deep',
      'POST',
      '/jobs',
      { type: 'example.echo', payload: deep(40) },
      undefined,
      400,
      'payload_too_deep',
    ],
    [
      'priority out of range',
      'POST',
      '/jobs',
      { type: 'example.echo', priority: 99999 },
      undefined,
      400,
      'validation_error',
    ],
    [
      'maxAttempts out of range',
      'POST',
      '/jobs',
      { type: 'example.echo', maxAttempts: 0 },
      undefined,
      400,
      'validation_error',
    ],
    [
      'negative delay',
      'POST',
      '/jobs',
      { type: 'example.echo', delaySeconds: -5 },
      undefined,
      400,
      'validation_error',
    ],
    [
      'runAt not a timestamp',
      'POST',
      '/jobs',
      { type: 'example.echo', runAt: 'next tuesday' },
      undefined,
      400,
      'validation_error',
    ],
    [
      'unknown field',
      'POST',
      '/jobs',
      { type: 'example.echo', color: 'red' },
      undefined,
      400,
      'validation_error',
    ],
    ['empty batch', 'POST', '/jobs/batch', { jobs: [] }, undefined, 400, 'empty_batch'],
    [
      'batch over 500',
      'POST',
      '/jobs/batch',
      { jobs: Array.from({ length: 501 }, () => ({ type: 'example.echo' })) },
      undefined,
      413,
      'batch_too_large',
    ],
    [
      'batch with one bad job',
      'POST',
      '/jobs/batch',
      { jobs: [{ type: 'example.echo' }, { type: 'example.sleep', payload: {} }] },
      undefined,
      422,
      'invalid_payload',
    ],
    ['non-numeric id', 'GET', '/jobs/abc', undefined, {}, 400, 'invalid_id'],
    ['id past int8', 'GET', '/jobs/99999999999999999999', undefined, {}, 400, 'invalid_id'],
    ['unknown id', 'GET', '/jobs/123456789', undefined, {}, 404, 'not_found'],
    ['unknown route', 'DELETE', '/jobs/1', undefined, {}, 404, 'route_not_found'],
  ];
  it.each(badInputs)(
    '%s → %s %s answers %i… and stores nothing',
    async (_name, method, path, body, headers, status, code) => {
      const res = await call(method, path, body, headers);
      expect(res.statusCode).toBe(status);
      expect(res.json.error.code).toBe(code);
      expect(typeof res.json.error.message).toBe('string');
      expect(res.body).not.toMatch(/at .*\.ts:\d+/);
      expect(await rows()).toBe(0);
    },
  );

  it('answers 503 with Retry-After when the database is unreachable, and never 2xx', async () => {
    const down = createHandler({
      env: {
        DATABASE_URL: 'postgres://root@127.0.0.1:1/none',
        DB_CONNECT_TIMEOUT_MS: '500',
        LOG_LEVEL: 'silent',
      },
      logStream: logSink(),
    });
    const res = (await down(
      apiEvent('POST', '/jobs', { type: 'example.echo', payload: 1 }),
      fakeContext(),
    )) as APIGatewayProxyStructuredResultV2;
    expect(res.statusCode).toBe(503);
    expect(res.headers?.['Retry-After']).toBe('5');
    expect(JSON.parse(res.body!).error.code).toBe('database_unavailable');
  });
});
