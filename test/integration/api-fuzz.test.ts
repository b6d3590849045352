import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiHandler, createHandler } from '../../functions/api.ts';
import { apiEvent, fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

/**
 * Hostile input against the real API handler and PostgreSQL: random JSON, huge and deep
 * values, NUL, lone surrogates, SQL-looking strings, numbers past 2^53, wrong types. 2,000
 * runs across the properties below. Never a 500, never a thrown handler, nothing stored for
 * a rejected request, and what is accepted is stored verbatim.
 */

const EXPECTED = new Set([200, 201, 400, 404, 409, 413, 415, 422]);
const MAX_PAYLOAD_BYTES = 16_384;

const sqlLike = fc.constantFrom(
  "'; DROP TABLE jobs; --",
  "' OR '1'='1",
  '$1',
  '$$; SELECT pg_sleep(10); $$',
  '\\x00',
  "Robert'); DELETE FROM jobs WHERE ('1'='1",
  '/* */ UNION SELECT * FROM pg_shadow --',
  "E'\\\\'",
  '%s%n%x',
  `\${jndi:ldap://x}`,
);
const nasty = fc.oneof(
  sqlLike,
  fc.constantFrom('\u0000', 'a\u0000b', '\uD800', 'x\uDFFFy', '\uD83D', '\uFEFF', '\u202E', ''),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ maxLength: 40 }),
);
const bigNumber = fc.constantFrom(
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53) - 2,
  2 ** 63,
  1e308,
  -1e308,
  5e-324,
  -0,
  Number.MAX_SAFE_INTEGER,
);
/** A value nested `depth` levels deep, in arrays or objects. */
const deep = fc.tuple(fc.integer({ min: 1, max: 60 }), fc.boolean(), nasty).map(([depth, arrays, leaf]) => {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = arrays ? [v] : { k: v };
  return v;
});
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 2, arbitrary: nasty },
  { weight: 1, arbitrary: bigNumber },
  { weight: 1, arbitrary: deep },
  { weight: 1, arbitrary: fc.dictionary(nasty, fc.oneof(nasty, bigNumber), { maxKeys: 5 }) },
  { weight: 1, arbitrary: fc.array(fc.oneof(nasty, bigNumber), { maxLength: 5 }) },
);
const wrongType = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  bigNumber,
  nasty,
  fc.array(nasty, { maxLength: 2 }),
  fc.object({ maxDepth: 1 }),
);
const jobRequest = fc.record(
  {
    type: fc.oneof(fc.constantFrom('example.echo', 'example.sleep', 'example.flaky'), nasty, wrongType),
    payload: hostileValue,
    queue: fc.oneof(fc.constantFrom('default', 'q-1', 'a.b:c_d'), nasty, wrongType),
    priority: fc.oneof(fc.integer({ min: -40_000, max: 40_000 }), bigNumber, wrongType),
    delaySeconds: fc.oneof(fc.double(), bigNumber, wrongType),
    runAt: fc.oneof(
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      nasty,
      wrongType,
    ),
    maxAttempts: fc.oneof(fc.integer({ min: -5, max: 2000 }), bigNumber, wrongType),
    idempotencyKey: fc.oneof(nasty, fc.string({ minLength: 250, maxLength: 260 }), wrongType),
    extra: hostileValue,
  },
  { requiredKeys: [] },
);

/** Mostly well-formed requests with hostile contents, so the storing path is exercised too. */
const echoRequest = fc.record(
  {
    type: fc.constant('example.echo'),
    payload: hostileValue,
    queue: fc.oneof(fc.constantFrom('default', 'q-1', 'a.b:c_d'), sqlLike),
    priority: fc.oneof(fc.integer({ min: -32_768, max: 32_767 }), bigNumber),
    maxAttempts: fc.integer({ min: 1, max: 1000 }),
    idempotencyKey: fc.oneof(sqlLike, fc.string({ minLength: 1, maxLength: 255 }), nasty),
  },
  { requiredKeys: ['type', 'payload'] },
);

/** Keys sorted recursively: jsonb keeps objects with their keys reordered and de-duplicated. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  return v;
}

describe.runIf(await postgresAvailable())('api handler under hostile input (fast-check)', () => {
  let t: TestSchema;
  let api: ApiHandler;
  const rows = async () =>
    Number((await t.db.query<{ n: string }>('SELECT count(*) AS n FROM jobs')).rows[0]!.n);
  const send = async (event: ReturnType<typeof apiEvent>) => {
    const res = (await api(event, fakeContext())) as APIGatewayProxyStructuredResultV2;
    const status = res.statusCode ?? 0;
    // Every answer is JSON; errors carry { error: { code, message } } and no stack.
    const json = JSON.parse(res.body ?? 'null') as { error?: { code: string; message: string } } & Record<
      string,
      unknown
    >;
    if (status >= 400) {
      expect(json.error?.code).toEqual(expect.any(String));
      expect(res.body).not.toMatch(/\n\s+at /);
    }
    return { status, json };
  };
  /** Runs one request; asserts the status is expected and that a rejected one stored nothing. */
  const probe = async (event: ReturnType<typeof apiEvent>) => {
    const before = await rows();
    const res = await send(event);
    expect(EXPECTED, `unexpected ${res.status}: ${JSON.stringify(res.json).slice(0, 300)}`).toContain(
      res.status,
    );
    if (res.status >= 400) expect(await rows()).toBe(before);
    return res;
  };

  beforeAll(async () => {
    t = await createTestSchema('apifuzz');
    api = createHandler({
      db: t.db,
      env: { MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD_BYTES), LOG_LEVEL: 'silent' },
      logStream: logSink(),
    });
  });
  afterAll(async () => t?.drop());

  it('POST /jobs with hostile job requests: never a 500; rejected requests store nothing; accepted payloads, queues and keys are stored verbatim (SQL-looking strings included)', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(jobRequest, echoRequest, echoRequest), async (req) => {
        const res = await probe(apiEvent('POST', '/jobs', req));
        if (res.status === 201 || res.status === 200) {
          accepted++;
          const { rows: stored } = await t.db.query<{
            payload: unknown;
            queue: string;
            idempotency_key: string | null;
          }>('SELECT payload, queue, idempotency_key FROM jobs WHERE id = $1', [res.json.id]);
          const sent = req as Record<string, unknown>;
          expect(canonical(stored[0]!.payload)).toEqual(
            canonical(JSON.parse(JSON.stringify(sent.payload ?? null))),
          );
          if (typeof sent.queue === 'string') expect(stored[0]!.queue).toBe(sent.queue);
          if (typeof sent.idempotencyKey === 'string')
            expect(stored[0]!.idempotency_key).toBe(sent.idempotencyKey);
        }
      }),
      { numRuns: 800 },
    );
    // The generator must reach the storing path, not only the rejections.
    expect(accepted).toBeGreaterThan(20);
  });

  it('POST /jobs with any JSON document as the body: never a 500, nothing stored when rejected', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.jsonValue({ maxDepth: 5 }), hostileValue), async (body) => {
        await probe(apiEvent('POST', '/jobs', JSON.stringify(body)));
      }),
      { numRuns: 500 },
    );
  });

  it('raw bodies (truncated JSON, lone-surrogate escapes, numbers past 2^53, huge and non-JSON) and wrong content types: never a 500', async () => {
    const raw = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.constantFrom(
        '{"type":"example.echo","payload":"\\ud800"}',
        '{"type":"example.echo","payload":{"\\udc00":1}}',
        '{"type":"example.echo","payload":"\\u0000"}',
        '{"type":"example.echo","priority":9007199254740993}',
        '{"type":"example.echo","payload":123456789012345678901234567890}',
        '{"type":"example.echo","payload":1e999}',
        '{"type":"example.echo",',
        '{"type":"example.echo","type":"example.sleep"}',
        '[',
        'null',
        '""',
        `{"type":"example.echo","payload":${'['.repeat(10_000)}${']'.repeat(10_000)}}`,
        `{"type":"example.echo","payload":${'{"a":'.repeat(3000)}1${'}'.repeat(3000)}}`,
        '{"type":"example.echo","runAt":"0000-01-01T00:00:00Z"}',
        '{"type":"example.echo","runAt":"9999-12-31T23:59:59-00:01"}',
        '{"type":"example.echo","payload":{"a":1,"\\u0061":2}}',
      ),
      fc
        .integer({ min: MAX_PAYLOAD_BYTES, max: 300_000 })
        .map((n) => JSON.stringify({ type: 'example.echo', payload: 'x'.repeat(n) })),
    );
    const contentType = fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'APPLICATION/JSON',
      'application/json; charset=iso-8859-1',
      'application/problem+json',
      'text/plain',
      'application/x-www-form-urlencoded',
      '',
    );
    await fc.assert(
      fc.asyncProperty(raw, contentType, fc.boolean(), async (body, type, batch) => {
        const headers: Record<string, string> = type ? { 'Content-Type': type } : {};
        await probe(apiEvent('POST', batch ? '/jobs/batch' : '/jobs', body, headers));
      }),
      { numRuns: 300 },
    );
  });

  it('integers in a payload are never silently rounded: beyond ±(2^53-1) refused (400 unsafe_integer), within it stored digit for digit', async () => {
    await fc.assert(
      fc.asyncProperty(fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }), async (n) => {
        const res = await probe(apiEvent('POST', '/jobs', `{"type":"example.echo","payload":{"n":${n}}}`));
        const safe = n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= -BigInt(Number.MAX_SAFE_INTEGER);
        if (!safe) {
          expect(res.status).toBe(400);
          expect(res.json.error?.code).toBe('unsafe_integer');
          return;
        }
        expect(res.status).toBe(201);
        const { rows: stored } = await t.db.query<{ n: string }>(
          "SELECT payload->>'n' AS n FROM jobs WHERE id = $1",
          [res.json.id],
        );
        expect(stored[0]!.n).toBe(String(n));
      }),
      { numRuns: 150 },
    );
  });

  it('an object with a key given twice, at any depth, is refused (400 duplicate_key), never last-one-wins', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 8 }), fc.integer({ min: 0, max: 20 }), async (key, depth) => {
        const k = JSON.stringify(key);
        const inner = `{${k}:1,"other":true,${k}:2}`;
        const body = `{"type":"example.echo","payload":${'{"x":'.repeat(depth)}${inner}${'}'.repeat(depth)}}`;
        const res = await probe(apiEvent('POST', '/jobs', body));
        expect(res.status).toBe(400);
        expect(res.json.error?.code).toBe('duplicate_key');
      }),
      { numRuns: 100 },
    );
  });

  it('POST /jobs/batch with hostile jobs: never a 500, all or nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.record({ jobs: fc.array(jobRequest, { maxLength: 6 }) }),
          fc.record({
            jobs: fc.array(fc.record({ type: fc.constant('example.echo'), payload: hostileValue }), {
              maxLength: 6,
            }),
          }),
          fc.record({ jobs: wrongType }),
        ),
        async (body) => {
          const before = await rows();
          const res = await probe(apiEvent('POST', '/jobs/batch', body));
          if (res.status === 201 || res.status === 200) {
            const n = (res.json.jobs as Array<{ created: boolean }>).filter((j) => j.created).length;
            expect(await rows()).toBe(before + n);
          }
        },
      ),
      { numRuns: 250 },
    );
  });

  it('GET /jobs/{id} and POST /jobs/{id}/cancel with hostile ids and bodies: never a 500, nothing stored', async () => {
    const id = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String),
      sqlLike,
    );
    await fc.assert(
      fc.asyncProperty(id, fc.boolean(), fc.option(hostileValue), async (raw, cancel, body) => {
        const path = `/jobs/${encodeURIComponent(raw)}${cancel ? '/cancel' : ''}`;
        await probe(apiEvent(cancel ? 'POST' : 'GET', path, cancel && body !== null ? body : undefined));
      }),
      { numRuns: 150 },
    );
  });
});
