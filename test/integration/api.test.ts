import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type ApiHandler, createHandler } from '../../functions/api.ts';
import { createRegistry, defineTask, TaskRegistry } from '../../functions/tasks/index.ts';
import { httpApiEvent } from '../aws/events.ts';
import { countByStatus } from '../helpers/invariants.ts';
import { apiEvent, fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, DATABASE_URL, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

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
    // Issue 15 item 6: each of these was a 500.
    [
      'runAt in year 0 (valid ISO 8601, outside PostgreSQL)',
      'POST',
      '/jobs',
      { type: 'example.echo', runAt: '0000-01-01T00:00:00Z' },
      undefined,
      400,
      'validation_error',
    ],
    [
      'runAt in year 9999 pushed past it by a negative offset',
      'POST',
      '/jobs',
      { type: 'example.echo', runAt: '9999-12-31T23:00:00-05:00' },
      undefined,
      400,
      'validation_error',
    ],
    [
      'payload nested 5,000 deep (would overflow JSON.stringify)',
      'POST',
      '/jobs',
      `{"type":"example.echo","payload":${'['.repeat(5000)}${']'.repeat(5000)}}`,
      undefined,
      400,
      'payload_too_deep',
    ],
    [
      'NUL in a cancel reason',
      'POST',
      '/jobs/1/cancel',
      { reason: 'a\u0000b' },
      undefined,
      400,
      'validation_error',
    ],
    [
      'lone surrogate in a cancel reason',
      'POST',
      '/jobs/1/cancel',
      '{"reason":"\\ud800"}',
      undefined,
      400,
      'validation_error',
    ],
    ['bad percent-encoding in the path', 'GET', '/jobs/%ZZ', undefined, {}, 400, 'invalid_path'],
    [
      'integer beyond 2^53 in a payload (JSON.parse would round it)',
      'POST',
      '/jobs',
      '{"type":"example.echo","payload":{"n":9007199254740993}}',
      undefined,
      400,
      'unsafe_integer',
    ],
    [
      'duplicate keys (JSON.parse would keep the last)',
      'POST',
      '/jobs',
      '{"type":"example.echo","type":"example.sleep","payload":{"ms":1}}',
      undefined,
      400,
      'duplicate_key',
    ],
    [
      'duplicate keys in a payload, one of them escaped',
      'POST',
      '/jobs',
      '{"type":"example.echo","payload":{"a":1,"\\u0061":2}}',
      undefined,
      400,
      'duplicate_key',
    ],
    [
      'a non-UTF-8 charset',
      'POST',
      '/jobs',
      { type: 'example.echo' },
      { 'Content-Type': 'application/json; charset=iso-8859-1' },
      415,
      'unsupported_media_type',
    ],
    [
      'text/plain (what a cross-site no-cors fetch sends)',
      'POST',
      '/jobs',
      { type: 'example.echo' },
      { 'Content-Type': 'text/plain;charset=UTF-8' },
      415,
      'unsupported_media_type',
    ],
    [
      'batch with an Idempotency-Key header',
      'POST',
      '/jobs/batch',
      { jobs: [{ type: 'example.echo' }] },
      { 'Content-Type': 'application/json', 'Idempotency-Key': 'batch-1' },
      400,
      'batch_idempotency_key',
    ],
    [
      "an idempotency key under the schedules' reserved prefix (body)",
      'POST',
      '/jobs',
      { type: 'example.echo', idempotencyKey: 'schedule:nightly:2026-12-02T03:00:00.000Z' },
      { 'Content-Type': 'application/json' },
      400,
      'validation_error',
    ],
    [
      "an idempotency key under the schedules' reserved prefix (header)",
      'POST',
      '/jobs',
      { type: 'example.echo' },
      { 'Content-Type': 'application/json', 'Idempotency-Key': 'schedule:nightly:2026-12-02T03:00:00.000Z' },
      400,
      'validation_error',
    ],
    [
      "a batch job in queue '..' (unreachable through a path)",
      'POST',
      '/jobs/batch',
      { jobs: [{ type: 'example.echo', queue: '..' }] },
      { 'Content-Type': 'application/json' },
      400,
      'validation_error',
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

  it('media types are case-insensitive: APPLICATION/JSON with Charset="UTF-8" is accepted', async () => {
    const res = await call(
      'POST',
      '/jobs',
      { type: 'example.echo', payload: 1 },
      {
        'Content-Type': 'APPLICATION/JSON; Charset="UTF-8"',
      },
    );
    expect(res.statusCode).toBe(201);
    expect(await rows()).toBe(1);
  });

  it('large numbers that JSON keeps exactly are stored as sent (2^53-1, floats)', async () => {
    const res = await call(
      'POST',
      '/jobs',
      '{"type":"example.echo","payload":{"max":9007199254740991,"min":-9007199254740991,"f":1.5e300}}',
    );
    expect(res.statusCode).toBe(201);
    const { rows: stored } = await t.db.query<{ p: string }>('SELECT payload::text AS p FROM jobs');
    expect(stored[0]!.p).toContain('9007199254740991');
  });

  it('a batch with an unknown task type names the item index', async () => {
    const res = await call('POST', '/jobs/batch', {
      jobs: [{ type: 'example.echo' }, { type: 'example.echo' }, { type: 'no.such.task' }],
    });
    expect(res.statusCode).toBe(422);
    expect(res.json.error.code).toBe('unknown_task_type');
    expect(res.json.error.message).toContain('jobs.2.');
    expect(res.json.error.details).toMatchObject({ index: 2, type: 'no.such.task' });
    expect(await rows()).toBe(0);
  });

  it('HEAD /health answers like GET, without a body', async () => {
    const res = await call('HEAD', '/health', undefined, {});
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('');
  });

  it('GET /jobs/{id} shows lastError without its stack; the row keeps the stack for operators', async () => {
    const { json: job } = await call('POST', '/jobs', { type: 'example.echo', payload: 1 });
    await t.db.query(
      `UPDATE jobs SET status = 'failed', finished_at = now(),
              last_error = jsonb_build_object('name', 'Error', 'message', 'boom', 'stack', 'Error: boom\n    at run (/var/task/index.mjs:1:2)')
       WHERE id = $1`,
      [job.id],
    );
    const got = await call('GET', `/jobs/${job.id}`, undefined, {});
    expect(got.statusCode).toBe(200);
    expect(got.json.lastError).toEqual({ name: 'Error', message: 'boom' });
    expect(got.body).not.toContain('/var/task');
    const { rows: stored } = await t.db.query<{ stack: string }>(
      "SELECT last_error->>'stack' AS stack FROM jobs WHERE id = $1",
      [job.id],
    );
    expect(stored[0]!.stack).toContain('/var/task/index.mjs');
  });

  it('POST /jobs/batch refuses an Idempotency-Key header (keys go on each job): the same batch sent twice with it stores nothing', async () => {
    const batch = { jobs: [{ type: 'example.echo', payload: 1 }] };
    const headers = { 'Content-Type': 'application/json', 'Idempotency-Key': 'batch-42' };
    const first = await call('POST', '/jobs/batch', batch, headers);
    const second = await call('POST', '/jobs/batch', batch, headers);
    for (const res of [first, second]) {
      expect(res.statusCode).toBe(400);
      expect(res.json.error.code).toBe('batch_idempotency_key');
      expect(res.json.error.message).toMatch(/idempotencyKey/);
    }
    expect(await rows()).toBe(0);
    // Keyed per item, a replay returns the same ids.
    const keyed = { jobs: [{ type: 'example.echo', payload: 1, idempotencyKey: 'item-1' }] };
    const a = await call('POST', '/jobs/batch', keyed);
    const b = await call('POST', '/jobs/batch', keyed);
    expect(b.json.jobs[0].id).toBe(a.json.jobs[0].id);
    expect(await rows()).toBe(1);
  });

  describe('a task that can never fit the consumer invocation (CONSUMER_TIMEOUT_SECONDS)', () => {
    const registry = new TaskRegistry([
      ...createRegistry()
        .types()
        .map((type) => createRegistry().get(type)!),
      defineTask({ type: 'test.long', schema: z.unknown(), timeoutSeconds: 20, run: async () => null }),
      defineTask({ type: 'test.short', schema: z.unknown(), timeoutSeconds: 4, run: async () => null }),
    ]);
    const withLimit = (seconds?: string) =>
      createHandler({
        db: t.db,
        registry,
        env: { LOG_LEVEL: 'silent', ...(seconds ? { CONSUMER_TIMEOUT_SECONDS: seconds } : {}) },
        logStream: logSink(),
      });
    const send = async (handler: ApiHandler, path: string, body: unknown) => {
      const res = (await handler(
        apiEvent('POST', path, body),
        fakeContext(),
      )) as APIGatewayProxyStructuredResultV2;
      return { status: res.statusCode, json: JSON.parse(res.body!) };
    };

    it('is refused with 422 task_timeout_exceeds_invocation, single and batch (with the item index); what fits is accepted', async () => {
      // 8 s invocation: the consumer keeps 2 s (a quarter) back, so a task gets at most 6 s.
      const api8 = withLimit('8');
      const single = await send(api8, '/jobs', { type: 'test.long' });
      expect(single.status).toBe(422);
      expect(single.json.error.code).toBe('task_timeout_exceeds_invocation');
      expect(single.json.error.details).toMatchObject({
        timeoutSeconds: 20,
        invocationSeconds: 8,
        usableSeconds: 6,
      });
      const batch = await send(api8, '/jobs/batch', {
        jobs: [{ type: 'test.short' }, { type: 'test.long' }],
      });
      expect(batch.status).toBe(422);
      expect(batch.json.error.code).toBe('task_timeout_exceeds_invocation');
      expect(batch.json.error.details).toMatchObject({ index: 1 });
      expect(batch.json.error.message).toContain('jobs.1.');
      expect(await rows()).toBe(0);
      expect((await send(api8, '/jobs', { type: 'test.short' })).status).toBe(201);
      expect((await send(withLimit('30'), '/jobs', { type: 'test.long' })).status).toBe(201);
    });

    it('is accepted when the invocation limit is not configured (nothing known to check)', async () => {
      expect((await send(withLimit(), '/jobs', { type: 'test.long' })).status).toBe(201);
    });
  });

  it('issue 16: a POST without Content-Type, as a SigV4 client sends it through the IAM-authorized HTTP API, is parsed as JSON; base64 bodies are decoded', async () => {
    // test/aws/events.ts: an IAM-authorized HTTP API event (payload 2.0) without a content type,
    // here with a CRLF/tab-formatted JSON body.
    const iamEvent = (body: string, isBase64Encoded: boolean) =>
      httpApiEvent('iam', { method: 'POST', path: '/jobs', body, base64: isBase64Encoded });
    const text = '{\r\n\t"type": "example.echo",\r\n\t"payload": {"a": 1}\r\n}';
    const plain = (await api(iamEvent(text, false), fakeContext())) as APIGatewayProxyStructuredResultV2;
    expect(plain.statusCode, plain.body).toBe(201);
    const b64 = (await api(iamEvent(text, true), fakeContext())) as APIGatewayProxyStructuredResultV2;
    expect(b64.statusCode, b64.body).toBe(201);
    const { rows: stored } = await t.db.query<{ payload: unknown }>('SELECT payload FROM jobs ORDER BY id');
    expect(stored.map((r) => r.payload)).toEqual([{ a: 1 }, { a: 1 }]);
  });

  it('issue 16: a login the database rejects (SQLSTATE 28000 here; an expired IAM token is 28P01/28000) answers 503 database_unavailable with Retry-After, not 500', async () => {
    const rejected = createHandler({
      env: {
        DATABASE_URL: `postgres://dte_no_such_role_${Date.now()}@${new URL(DATABASE_URL).host}/test`,
        LOG_LEVEL: 'silent',
      },
      logStream: logSink(),
    });
    const res = (await rejected(
      apiEvent('POST', '/jobs', { type: 'example.echo', payload: 1 }),
      fakeContext(),
    )) as APIGatewayProxyStructuredResultV2;
    expect(res.statusCode).toBe(503);
    expect(res.headers?.['Retry-After']).toBe('5');
    expect(JSON.parse(res.body!).error.code).toBe('database_unavailable');
  });

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
