import {
  APIGatewayProxyEventV2Schema,
  APIGatewayRequestAuthorizerV2Schema,
} from '@aws-lambda-powertools/parser/schemas';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiHandler, createHandler } from '../../functions/api.ts';
import { fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { AUTHORIZER_KINDS, type AuthorizerKind, type HttpRequest, httpApiEvent } from './events.ts';

/**
 * The API Gateway events of test/aws/events.ts (also used by deploy-path.test.ts) checked against
 * a schema nobody here wrote: @aws-lambda-powertools/parser's zod schemas for HTTP API payload
 * 2.0. Then the api handler, in process, routes each of them.
 */

const REQUESTS: HttpRequest[] = [
  {
    method: 'GET',
    path: '/health',
    query: [
      ['probe', 'a'],
      ['probe', 'b'],
    ],
  },
  { method: 'GET', path: '/jobs/42' },
  { method: 'HEAD', path: '/jobs/42' },
  { method: 'POST', path: '/jobs', body: { type: 'example.echo', payload: { n: 1 } } },
  { method: 'POST', path: '/jobs', body: { type: 'example.echo', payload: { n: 1 } }, base64: true },
  { method: 'POST', path: '/jobs/batch', body: { jobs: [{ type: 'example.echo' }] } },
  { method: 'POST', path: '/jobs/42/cancel', body: { reason: 'test' } },
  { method: 'POST', path: '/jobs/42/cancel' },
];

/** The authorizer blocks with every field required that AWS sends for that authorizer type. */
const authorizerShape = APIGatewayRequestAuthorizerV2Schema.shape;
const IAM_COMPLETE = authorizerShape.iam.unwrap().required().strict();
const JWT_COMPLETE = authorizerShape.jwt.unwrap().required().strict();

const header = (event: APIGatewayProxyEventV2, name: string) =>
  Object.entries(event.headers).find(([k]) => k.toLowerCase() === name)?.[1];

describe("the authored HTTP API events under Powertools' parser schemas", () => {
  for (const kind of AUTHORIZER_KINDS) {
    it(`${kind}: every request parses under APIGatewayProxyEventV2Schema, losing no field`, () => {
      for (const req of REQUESTS) {
        const event = httpApiEvent(kind, req);
        const parsed = APIGatewayProxyEventV2Schema.safeParse(event);
        expect(parsed.error, `${kind} ${req.method} ${req.path}`).toBeUndefined();
        // The schema strips keys it does not know: a misspelt or invented field shows up here.
        expect(parsed.data).toEqual(event);
      }
    });
  }

  it('carries exactly the authorizer block of its kind, complete', () => {
    const blocks = (kind: AuthorizerKind) =>
      httpApiEvent(kind, { method: 'GET', path: '/health' }).requestContext as {
        authorizer?: Record<string, unknown>;
      };
    expect(Object.keys(blocks('iam').authorizer!)).toEqual(['iam']);
    expect(IAM_COMPLETE.safeParse(blocks('iam').authorizer!.iam).error).toBeUndefined();
    expect(blocks('iam').authorizer!.iam).toMatchObject({ cognitoIdentity: null });
    expect(Object.keys(blocks('jwt').authorizer!)).toEqual(['jwt']);
    expect(JWT_COMPLETE.safeParse(blocks('jwt').authorizer!.jwt).error).toBeUndefined();
    expect(Object.keys(blocks('lambda').authorizer!)).toEqual(['lambda']);
    expect(Object.keys(blocks('lambda').authorizer!.lambda as object).length).toBeGreaterThan(0);
    expect(blocks('none').authorizer).toBeUndefined();
  });

  it('keeps the quirks the api handler must live with', () => {
    const post = { method: 'POST', path: '/jobs', body: { type: 'example.echo' } } as const;
    // SigV4 POST without Content-Type (issue 16), explicit route key, $default stage.
    const iam = httpApiEvent('iam', post);
    expect(header(iam, 'content-type')).toBeUndefined();
    expect(iam).toMatchObject({ routeKey: 'POST /jobs', rawPath: '/jobs', isBase64Encoded: false });
    expect(iam.requestContext.stage).toBe('$default');
    expect(iam.queryStringParameters).toBeUndefined();
    // Lower-case header names only.
    for (const kind of AUTHORIZER_KINDS) {
      const names = Object.keys(httpApiEvent(kind, post).headers);
      expect(
        names.filter((n) => n !== n.toLowerCase()),
        kind,
      ).toEqual([]);
    }
    // A named stage keeps its segment in the paths; route key and path parameters name the route.
    const cancel = httpApiEvent('lambda', { method: 'POST', path: '/jobs/7/cancel' });
    expect(cancel).toMatchObject({
      routeKey: 'POST /jobs/{id}/cancel',
      rawPath: '/v1/jobs/7/cancel',
      pathParameters: { id: '7' },
      requestContext: { stage: 'v1', http: { path: '/v1/jobs/7/cancel' } },
    });
    // The $default route: no path parameters, a repeated query parameter comma-joined.
    const health = httpApiEvent('none', {
      method: 'GET',
      path: '/health',
      query: [
        ['a', '1'],
        ['a', '2'],
      ],
    });
    expect(health).toMatchObject({ routeKey: '$default', rawQueryString: 'a=1&a=2' });
    expect(health.queryStringParameters).toEqual({ a: '1,2' });
    expect(health.pathParameters).toBeUndefined();
    // Base64 bodies and cookies.
    const b64 = httpApiEvent('jwt', { ...post, base64: true });
    expect(b64.isBase64Encoded).toBe(true);
    expect(JSON.parse(Buffer.from(b64.body!, 'base64').toString('utf8'))).toEqual(post.body);
    expect(b64.cookies?.length).toBeGreaterThan(0);
  });

  it("Powertools' schema refuses what AWS would never send (the check can fail)", () => {
    const event = httpApiEvent('iam', { method: 'GET', path: '/health' });
    const bad = (patch: (e: APIGatewayProxyEventV2) => void) => {
      const e = structuredClone(event);
      patch(e);
      return APIGatewayProxyEventV2Schema.safeParse(e).success;
    };
    expect(bad(() => {})).toBe(true);
    expect(bad((e) => (e.requestContext.http.sourceIp = 'IP'))).toBe(false);
    expect(bad((e) => (e.requestContext.http.method = 'FETCH'))).toBe(false);
    expect(bad((e) => delete (e as Partial<typeof e>).rawQueryString)).toBe(false);
    expect(bad((e) => (e.headers = { 'x-n': 1 as never }))).toBe(false);
  });
});

describe.runIf(await postgresAvailable())('the api handler routes each authored event (in process)', () => {
  let t: TestSchema;
  let api: ApiHandler;
  const send = async (kind: AuthorizerKind, req: HttpRequest) => {
    const event = httpApiEvent(kind, req);
    expect(APIGatewayProxyEventV2Schema.safeParse(event).success).toBe(true);
    const res = (await api(event, fakeContext())) as APIGatewayProxyStructuredResultV2;
    return { ...res, json: res.body ? JSON.parse(res.body) : undefined };
  };

  beforeAll(async () => {
    t = await createTestSchema('aws_events');
    api = createHandler({ db: t.db, env: { LOG_LEVEL: 'silent' }, logStream: logSink() });
  });
  afterAll(async () => t?.drop());

  it('none: GET /health on the $default route answers 200', async () => {
    const res = await send('none', { method: 'GET', path: '/health', query: [['probe', '1']] });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json).toEqual({ status: 'ok' });
  });

  it('iam: a POST /jobs without Content-Type is taken as JSON (plain and base64); GET of a missing job is 404', async () => {
    const text = '{\r\n\t"type": "example.echo",\r\n\t"payload": {"from": "iam"}\r\n}';
    const plain = await send('iam', { method: 'POST', path: '/jobs', body: text });
    expect(plain.statusCode, plain.body).toBe(201);
    expect(plain.json).toMatchObject({ type: 'example.echo', status: 'queued' });
    const b64 = await send('iam', { method: 'POST', path: '/jobs', body: text, base64: true });
    expect(b64.statusCode, b64.body).toBe(201);
    const { rows } = await t.db.query<{ payload: unknown }>(
      'SELECT payload FROM jobs WHERE id = ANY($1::bigint[]) ORDER BY id',
      [[plain.json.id, b64.json.id]],
    );
    expect(rows.map((r) => r.payload)).toEqual([{ from: 'iam' }, { from: 'iam' }]);
    const missing = await send('iam', { method: 'GET', path: '/jobs/999999999' });
    expect(missing.statusCode, missing.body).toBe(404);
  });

  it('jwt: a base64 POST /jobs is decoded and stored; GET /jobs/{id} reads it back', async () => {
    const created = await send('jwt', {
      method: 'POST',
      path: '/jobs',
      body: { type: 'example.echo', payload: { from: 'jwt' } },
      base64: true,
    });
    expect(created.statusCode, created.body).toBe(201);
    const got = await send('jwt', { method: 'GET', path: `/jobs/${created.json.id}` });
    expect(got.statusCode, got.body).toBe(200);
    expect(got.json).toMatchObject({ id: created.json.id, type: 'example.echo', status: 'queued' });
    const { rows } = await t.db.query<{ payload: unknown }>('SELECT payload FROM jobs WHERE id = $1', [
      created.json.id,
    ]);
    expect(rows.map((r) => r.payload)).toEqual([{ from: 'jwt' }]);
  });

  it('lambda: POST /jobs/{id}/cancel on the named stage v1 (stage segment in rawPath) cancels the job', async () => {
    const created = await send('iam', { method: 'POST', path: '/jobs', body: { type: 'example.echo' } });
    expect(created.statusCode, created.body).toBe(201);
    const res = await send('lambda', {
      method: 'POST',
      path: `/jobs/${created.json.id}/cancel`,
      body: { reason: 'tenant asked' },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json).toMatchObject({ id: created.json.id, status: 'failed' });
    expect(res.body).toContain('tenant asked');
    const again = await send('lambda', { method: 'POST', path: `/jobs/${created.json.id}/cancel` });
    expect(again.statusCode, again.body).toBe(409);
  });
});
