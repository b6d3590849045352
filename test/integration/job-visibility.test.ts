import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ApiHandler, createHandler } from '../../functions/api.ts';
import type { Db } from '../../functions/engine/index.ts';
import { apiEvent, fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are read field by field in assertions
type Res = APIGatewayProxyStructuredResultV2 & { json: any };

/** Who signs a request: a JWT subject, an IAM principal, or nobody (no authorizer). */
type Who = { jwt: string } | { iam: string } | null;

/** The authorizer block API Gateway (HTTP API, payload v2) adds for a JWT or an IAM caller. */
function withCaller(event: APIGatewayProxyEventV2, who: Who): APIGatewayProxyEventV2 {
  if (who === null) return event;
  const authorizer =
    'jwt' in who
      ? { jwt: { claims: { sub: who.jwt, iss: 'https://issuer.example.com', aud: 'dte' }, scopes: null } }
      : {
          iam: {
            accessKey: 'AKIAEXAMPLE',
            accountId: '123456789012',
            callerId: 'AIDAEXAMPLE',
            cognitoIdentity: null,
            principalOrgId: null,
            userArn: who.iam,
            userId: 'AIDAEXAMPLE',
          },
        };
  return { ...event, requestContext: { ...event.requestContext, authorizer } as never };
}

/** Every statement runs as dte_api (SET LOCAL ROLE), as the deployed api's login user does. */
function asApiRole(db: Db): Db {
  const run = <T>(fn: (tx: Parameters<Parameters<Db['transaction']>[0]>[0]) => Promise<T>) =>
    db.transaction(async (tx) => {
      await tx.query('SET LOCAL ROLE dte_api');
      return fn(tx);
    });
  return {
    query: (text, values) => run((tx) => tx.query(text, values)),
    transaction: run,
    end: async () => {},
  };
}

const ALICE = { jwt: 'alice-sub-0001' };
const BOB = { jwt: 'bob-sub-0002' };
const CAROL_ARN = 'arn:aws:sts::123456789012:assumed-role/orders/carol';
const CAROL = { iam: CAROL_ARN };

describe.runIf(await postgresAvailable())(
  'who created a job, and who may see it (JWT and IAM callers)',
  () => {
    let t: TestSchema;
    const handlers = new Map<string, ApiHandler>();
    const handler = (visibleTo: 'creator' | 'all' | undefined) => {
      const key = visibleTo ?? 'unset';
      let h = handlers.get(key);
      if (!h) {
        h = createHandler({
          db: asApiRole(t.db),
          env: { LOG_LEVEL: 'silent', ...(visibleTo ? { JOBS_VISIBLE_TO: visibleTo } : {}) },
          logStream: logSink(),
        });
        handlers.set(key, h);
      }
      return h;
    };
    const call = async (
      visibleTo: 'creator' | 'all' | undefined,
      who: Who,
      method: string,
      path: string,
      body?: unknown,
      headers: Record<string, string> = { 'content-type': 'application/json' },
    ): Promise<Res> => {
      const event = withCaller(apiEvent(method, path, body, headers), who);
      const res = (await handler(visibleTo)(event, fakeContext())) as APIGatewayProxyStructuredResultV2;
      return { ...res, json: res.body ? JSON.parse(res.body) : undefined };
    };
    const createdBy = async (id: string) =>
      (await t.db.query<{ created_by: string | null }>('SELECT created_by FROM jobs WHERE id = $1', [id]))
        .rows[0]?.created_by;

    beforeAll(async () => {
      t = await createTestSchema('visibility');
    });
    afterAll(async () => t?.drop());
    beforeEach(async () => {
      await t.db.query('TRUNCATE jobs, job_counter_deltas');
    });

    it('records the JWT sub or the IAM caller ARN as the creator of single, keyed and batched jobs', async () => {
      // Act
      const a = await call(undefined, ALICE, 'POST', '/jobs', { type: 'example.echo', payload: 1 });
      const c = await call(
        undefined,
        CAROL,
        'POST',
        '/jobs',
        { type: 'example.echo', payload: 2 },
        {
          'content-type': 'application/json',
          'idempotency-key': 'carol-1',
        },
      );
      const batch = await call(undefined, BOB, 'POST', '/jobs/batch', {
        jobs: [{ type: 'example.echo' }, { type: 'example.echo', idempotencyKey: 'bob-1' }],
      });
      const anonymous = await call(undefined, null, 'POST', '/jobs', { type: 'example.echo' });
      // Assess
      expect([a.statusCode, c.statusCode, batch.statusCode, anonymous.statusCode]).toEqual([
        201, 201, 201, 201,
      ]);
      expect(await createdBy(a.json.id)).toBe(ALICE.jwt);
      expect(await createdBy(c.json.id)).toBe(CAROL_ARN);
      for (const j of batch.json.jobs) expect(await createdBy(j.id)).toBe(BOB.jwt);
      expect(await createdBy(anonymous.json.id)).toBeNull();
      // The creator is not part of the job as the API shows it.
      expect(a.json).not.toHaveProperty('createdBy');
    });

    it('by default (JOBS_VISIBLE_TO unset or all) any caller reads and cancels any job', async () => {
      // Prepare
      const { json: job } = await call(undefined, ALICE, 'POST', '/jobs', { type: 'example.echo' });
      // Act
      const read = await call('all', BOB, 'GET', `/jobs/${job.id}`);
      const cancelled = await call(undefined, CAROL, 'POST', `/jobs/${job.id}/cancel`, { reason: 'ops' });
      // Assess
      expect(read.statusCode).toBe(200);
      expect(cancelled.statusCode).toBe(200);
      expect(cancelled.json.lastError).toMatchObject({ name: 'Cancelled', actor: CAROL_ARN });
    });

    it("with JOBS_VISIBLE_TO=creator, another caller's job reads and cancels as 404, exactly like a missing one", async () => {
      // Prepare
      const { json: job } = await call('creator', ALICE, 'POST', '/jobs', { type: 'example.echo' });
      const missing = String(Number(job.id) + 1000);
      // Act
      const read = await call('creator', BOB, 'GET', `/jobs/${job.id}`);
      const readMissing = await call('creator', BOB, 'GET', `/jobs/${missing}`);
      const cancel = await call('creator', CAROL, 'POST', `/jobs/${job.id}/cancel`, { reason: 'mine now' });
      const cancelMissing = await call('creator', CAROL, 'POST', `/jobs/${missing}/cancel`, { reason: 'x' });
      const anonymous = await call('creator', null, 'GET', `/jobs/${job.id}`);
      // Assess: same status and code, the id in each body only the one asked for.
      for (const r of [read, readMissing, cancel, cancelMissing, anonymous]) {
        expect(r.statusCode).toBe(404);
        expect(r.json.error.code).toBe('not_found');
      }
      expect(JSON.stringify(read.json).replaceAll(job.id, 'ID')).toBe(
        JSON.stringify(readMissing.json).replaceAll(missing, 'ID'),
      );
      const row = await t.db.query<{ status: string }>('SELECT status FROM jobs WHERE id = $1', [job.id]);
      expect(row.rows[0]!.status).toBe('queued');
    });

    it('with JOBS_VISIBLE_TO=creator, the creator reads and cancels its own job; a terminal one is 409 only to it', async () => {
      // Prepare
      const { json: job } = await call('creator', CAROL, 'POST', '/jobs', { type: 'example.echo' });
      // Act
      const read = await call('creator', CAROL, 'GET', `/jobs/${job.id}`);
      const cancelled = await call('creator', CAROL, 'POST', `/jobs/${job.id}/cancel`, { reason: 'done' });
      const again = await call('creator', CAROL, 'POST', `/jobs/${job.id}/cancel`, { reason: 'again' });
      const other = await call('creator', BOB, 'POST', `/jobs/${job.id}/cancel`, { reason: 'again' });
      // Assess
      expect(read.statusCode).toBe(200);
      expect(cancelled.statusCode).toBe(200);
      expect(again.statusCode).toBe(409);
      expect(again.json.error.code).toBe('job_terminal');
      expect(other.statusCode).toBe(404);
    });

    for (const visibleTo of ['all', 'creator'] as const) {
      it(`an idempotency conflict never names another caller's job (JOBS_VISIBLE_TO=${visibleTo})`, async () => {
        // Prepare
        const keyed = { 'content-type': 'application/json', 'idempotency-key': 'order-7' };
        const { json: job } = await call(
          visibleTo,
          ALICE,
          'POST',
          '/jobs',
          { type: 'example.echo', payload: 1 },
          keyed,
        );
        // Act
        const bob = await call(visibleTo, BOB, 'POST', '/jobs', { type: 'example.echo', payload: 2 }, keyed);
        const bobBatch = await call(visibleTo, BOB, 'POST', '/jobs/batch', {
          jobs: [{ type: 'example.echo', payload: 3, idempotencyKey: 'order-7' }],
        });
        const alice = await call(
          visibleTo,
          ALICE,
          'POST',
          '/jobs',
          { type: 'example.echo', payload: 2 },
          keyed,
        );
        // Assess
        for (const r of [bob, bobBatch]) {
          expect(r.statusCode).toBe(409);
          expect(r.json.error.code).toBe('idempotency_conflict');
          expect(r.body).not.toContain(job.id);
        }
        expect(alice.statusCode).toBe(409);
        expect(alice.json.error.details).toMatchObject({ jobId: job.id });
      });
    }

    it("with JOBS_VISIBLE_TO=creator, the same request under another caller's key is a 409, not a replay of its job", async () => {
      // Prepare
      const keyed = { 'content-type': 'application/json', 'idempotency-key': 'order-8' };
      const body = { type: 'example.echo', payload: { n: 1 } };
      const first = await call('creator', ALICE, 'POST', '/jobs', body, keyed);
      // Act
      const bob = await call('creator', BOB, 'POST', '/jobs', body, keyed);
      const aliceAgain = await call('creator', ALICE, 'POST', '/jobs', body, keyed);
      const bobAll = await call('all', BOB, 'POST', '/jobs', body, keyed);
      // Assess
      expect(bob.statusCode).toBe(409);
      expect(bob.json.error.code).toBe('idempotency_conflict');
      expect(bob.body).not.toContain(first.json.id);
      expect(aliceAgain.statusCode).toBe(200);
      expect(aliceAgain.json.id).toBe(first.json.id);
      // Where every caller may read every job, a replay is still a replay.
      expect(bobAll.statusCode).toBe(200);
      expect(bobAll.json.id).toBe(first.json.id);
      const n = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs');
      expect(n.rows[0]!.n).toBe(1);
    });
  },
);
