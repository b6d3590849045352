import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../functions/api.ts';
import {
  AuthError,
  ConflictError,
  createClient,
  job,
  NotFoundError,
  type TaskEngineClient,
  UnavailableError,
  ValidationError,
} from '../../functions/client/index.ts';
import { claimJobs, completeJobs, DatabaseUnavailableError, type Db } from '../../functions/engine/index.ts';
import { sleep as sleepTask } from '../../functions/tasks/examples.ts';
import { countByStatus, expectCountersMatchTable } from '../helpers/invariants.ts';
import { logSink } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { type ApiServer, startApiServer } from './api-server.ts';
import { sigV4Verifier } from './sigv4-verifier.ts';

const REGION = 'eu-west-1';
const KEY = { accessKeyId: 'AKIDCLIENTTEST', secretAccessKey: 'the-right-secret' };
// Fast retries: waits are what the policy allows, not what a real outage needs.
const FAST_RETRY = { baseDelayMs: 5, maxDelayMs: 20, deadlineMs: 20_000, maxAttempts: 6 };

/** The database fails its next `n` statements as a dropped connection would, before running them. */
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

const rowCount = async (db: Db) => Object.values(await countByStatus(db)).reduce((a, b) => a + b, 0);
const posts = (server: ApiServer) => server.seen.filter((s) => s.method === 'POST');

describe.runIf(await postgresAvailable())('the client against the api handler over HTTP', () => {
  let t: TestSchema;
  let db: ReturnType<typeof flakyDb>;
  let open: ApiServer;
  let signed: ApiServer;
  let client: TaskEngineClient;

  beforeAll(async () => {
    t = await createTestSchema('client_http');
    db = flakyDb(t.db);
    const api = createHandler({ db, env: { LOG_LEVEL: 'silent' }, logStream: logSink() });
    open = await startApiServer(api);
    signed = await startApiServer(api, {
      verify: sigV4Verifier({ region: REGION, secrets: { [KEY.accessKeyId]: KEY.secretAccessKey } }),
    });
    client = createClient({ url: open.url, auth: 'none', retry: FAST_RETRY });
  });
  afterAll(async () => {
    await open?.close();
    await signed?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, job_counter_deltas');
    open.fault = undefined;
    open.seen.length = 0;
    signed.seen.length = 0;
  });

  it('enqueue, get, waitFor and cancel round trip; the result is read back', async () => {
    // Act
    const queued = await client.enqueue({ type: 'example.echo', payload: { hello: 'world' }, priority: 2 });
    const again = await client.get(queued.id);
    const waiting = client.waitFor(queued.id, { timeout: 20_000, intervalMs: 20 });
    const [claimed] = await claimJobs(t.db, { workerId: 'w', limit: 1, leaseSeconds: 30, queues: [] });
    await completeJobs(t.db, [
      { id: claimed!.id, leaseToken: claimed!.leaseToken, result: { echoed: true } },
    ]);
    const done = await waiting;
    const other = await client.enqueue({ type: 'example.echo', payload: 2 });
    const cancelled = await client.cancel(other.id, { reason: 'not needed' });
    const cancelAgain = await client.cancel(other.id).catch((e: unknown) => e);

    // Assess
    expect(queued).toMatchObject({ type: 'example.echo', status: 'queued', priority: 2, queue: 'default' });
    expect(again).toEqual(queued);
    expect(done).toMatchObject({ id: queued.id, status: 'completed', result: { echoed: true } });
    expect(cancelled).toMatchObject({ id: other.id, status: 'failed' });
    expect(cancelAgain).toBeInstanceOf(ConflictError);
    expect(cancelAgain).toMatchObject({ status: 409, code: 'job_terminal' });
    await expectCountersMatchTable(t.db);
  });

  it('typed tasks: the payload is checked against the task schema before anything is sent', async () => {
    const ok = await client.enqueue(sleepTask, { ms: 1 }, { queue: 'typed' });
    const batch = await client.enqueueMany([job(sleepTask, { ms: 2 }), job(sleepTask, { ms: 3 })]);
    const before = open.seen.length;
    // A caller that bypasses the types (plain JavaScript) is stopped here too, with the field path.
    const wrong = await client.enqueue(sleepTask, { ms: 'soon' } as never).catch((e: unknown) => e);

    expect(ok).toMatchObject({ type: 'example.sleep', queue: 'typed' });
    expect(batch.map((j) => j.type)).toEqual(['example.sleep', 'example.sleep']);
    expect(wrong).toBeInstanceOf(ValidationError);
    expect(wrong).toMatchObject({ code: 'invalid_payload', field: 'payload.ms', status: undefined });
    expect(open.seen.length).toBe(before);
    expect(await rowCount(t.db)).toBe(3);
  });

  it("maps the API's errors one for one and retries none of the 4xx", async () => {
    await client.enqueue({ type: 'example.echo', payload: 1, idempotencyKey: 'taken' });
    open.seen.length = 0;
    const catchIt = (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: unknown) => e,
      );

    const unknownType = await catchIt(client.enqueue({ type: 'no.such.task' }));
    const badPayload = await catchIt(client.enqueue({ type: 'example.sleep', payload: { ms: -1 } }));
    const badPriority = await catchIt(client.enqueue({ type: 'example.echo', priority: 1e6 }));
    const missing = await catchIt(client.get('999999'));
    const conflict = await catchIt(
      client.enqueue({ type: 'example.echo', payload: 2, idempotencyKey: 'taken' }),
    );

    expect(unknownType).toBeInstanceOf(ValidationError);
    expect(unknownType).toMatchObject({
      status: 422,
      code: 'unknown_task_type',
      details: { type: 'no.such.task' },
    });
    expect(badPayload).toMatchObject({ status: 422, code: 'invalid_payload', field: 'payload.ms' });
    expect(badPriority).toBeInstanceOf(ValidationError);
    expect(badPriority).toMatchObject({ status: 400, code: 'validation_error', field: 'priority' });
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(missing).toMatchObject({ status: 404, code: 'not_found' });
    expect(conflict).toBeInstanceOf(ConflictError);
    expect(conflict).toMatchObject({ status: 409, code: 'idempotency_conflict' });
    expect(open.seen).toHaveLength(5);
    expect(await rowCount(t.db)).toBe(1);
  });

  it('SigV4: a correctly signed request passes the verifier; a wrong secret is refused 403 and not retried', async () => {
    const good = createClient({
      url: signed.url,
      auth: 'iam',
      region: REGION,
      credentials: KEY,
      retry: FAST_RETRY,
    });
    const withToken = createClient({
      url: signed.url,
      auth: 'iam',
      region: REGION,
      // A provider function, as the SDK's chains are, with a session token (Lambda, ECS, SSO).
      credentials: async () => ({ ...KEY, sessionToken: 'session-token-from-sts' }),
      retry: FAST_RETRY,
    });
    const bad = createClient({
      url: signed.url,
      auth: 'iam',
      region: REGION,
      credentials: { ...KEY, secretAccessKey: 'a-wrong-secret' },
      retry: FAST_RETRY,
    });

    const created = await good.enqueue({ type: 'example.echo', payload: { signed: true } });
    const read = await withToken.get(created.id);
    const batch = await good.enqueueMany([{ type: 'example.echo', payload: 'ü' }]);
    const seenBefore = signed.seen.length;
    const refused = await bad.enqueue({ type: 'example.echo', payload: 'x' }).catch((e: unknown) => e);

    expect(read.id).toBe(created.id);
    expect(batch).toHaveLength(1);
    expect(signed.seen.slice(0, seenBefore).every((s) => s.status !== undefined)).toBe(true);
    expect(refused).toBeInstanceOf(AuthError);
    expect(refused).toMatchObject({ status: 403, message: 'Forbidden' });
    expect(signed.seen.length - seenBefore).toBe(1);
    expect(signed.seen.at(-1)!.status).toBeUndefined();
    expect(await rowCount(t.db)).toBe(2);
  });

  it("SigV4 without explicit credentials signs with the SDK's default chain (here: the environment)", async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: KEY.accessKeyId,
      AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey,
      AWS_SESSION_TOKEN: 'env-session-token',
    });
    try {
      const fromChain = createClient({ url: signed.url, auth: 'iam', region: REGION, retry: FAST_RETRY });
      const created = await fromChain.enqueue({ type: 'example.echo', payload: 'chain' });
      expect(created.status).toBe('queued');
      expect(signed.seen.at(-1)!.status).toBe(201);
    } finally {
      for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });

  it('a connection reset after the server committed: the retry carries the same key and makes exactly one job', async () => {
    open.fault = (s) => (s.n === 1 ? { kind: 'reset' } : undefined);

    const created = await client.enqueue({ type: 'example.echo', payload: { order: 42 } });

    const sent = posts(open);
    expect(sent).toHaveLength(2);
    expect(sent[0]!.status).toBe(201); // the first attempt was stored; its answer was lost
    expect(sent[1]!.status).toBe(200); // the retry is the idempotent replay
    const keys = sent.map((s) => JSON.parse(s.body).idempotencyKey);
    expect(keys[0]).toEqual(expect.any(String));
    expect(keys[1]).toBe(keys[0]);
    expect(await rowCount(t.db)).toBe(1);
    expect((await client.get(created.id)).id).toBe(created.id);
    await expectCountersMatchTable(t.db);
  });

  it('a batch reset after commit is retried with the same per-job keys: three jobs, not six', async () => {
    open.fault = (s) => (s.n === 1 ? { kind: 'reset' } : undefined);

    const jobs = await client.enqueueMany([
      { type: 'example.echo', payload: 1 },
      { type: 'example.echo', payload: 1 },
      { type: 'example.echo', payload: 2, idempotencyKey: 'mine' },
    ]);

    const sent = posts(open).map((s) =>
      JSON.parse(s.body).jobs.map((j: { idempotencyKey: string }) => j.idempotencyKey),
    );
    expect(sent).toHaveLength(2);
    expect(sent[1]).toEqual(sent[0]);
    expect(new Set(sent[0]).size).toBe(3);
    expect(sent[0][2]).toBe('mine');
    expect(new Set(jobs.map((j) => j.id)).size).toBe(3);
    expect(await rowCount(t.db)).toBe(3);
  });

  it('503 outcome_unknown and an answer slower than the attempt timeout are retried into one job', async () => {
    open.fault = (s) =>
      s.n === 1
        ? {
            kind: 'replace',
            status: 503,
            body: {
              error: { code: 'outcome_unknown', message: 'connection lost after sending', details: null },
            },
          }
        : undefined;
    const a = await client.enqueue({ type: 'example.echo', payload: 'a' });
    expect(posts(open).map((s) => s.status)).toEqual([201, 200]);
    const slowClient = createClient({
      url: open.url,
      auth: 'none',
      retry: FAST_RETRY,
      attemptTimeoutMs: 1_000,
    });
    open.seen.length = 0;
    open.fault = (s) => (s.n === 1 ? { kind: 'delay', ms: 3_000 } : undefined);
    const b = await slowClient.enqueue({ type: 'example.echo', payload: 'b' });

    expect(a.id).not.toBe(b.id);
    // The late answer and at least one retry (a loaded machine may time out once more); one job each.
    expect(posts(open)[0]!.status).toBe(201);
    expect(posts(open).length).toBeGreaterThanOrEqual(2);
    expect(await rowCount(t.db)).toBe(2);
  });

  it("503 database_unavailable (the handler's own answer) is retried; giving up reports whether the outcome is known", async () => {
    db.failNext(2);
    const stored = await client.enqueue({ type: 'example.echo', payload: 'after two 503s' });
    expect(posts(open).map((s) => s.status)).toEqual([503, 503, 201]);

    open.seen.length = 0;
    db.failNext(100);
    const known = await client.enqueue({ type: 'example.echo', payload: 'never' }).catch((e: unknown) => e);
    db.failNext(0);
    expect(known).toBeInstanceOf(UnavailableError);
    expect(known).toMatchObject({
      status: 503,
      code: 'database_unavailable',
      outcomeUnknown: false,
      attempts: 6,
    });
    expect(posts(open)).toHaveLength(6);

    open.seen.length = 0;
    db.failNext(100);
    open.fault = (s) => (s.n === 1 ? { kind: 'reset' } : undefined);
    const unknown = await client.enqueue({ type: 'example.echo', payload: 'maybe' }).catch((e: unknown) => e);
    db.failNext(0);
    expect(unknown).toMatchObject({ code: 'database_unavailable', outcomeUnknown: true });

    expect(stored.status).toBe('queued');
    expect(await rowCount(t.db)).toBe(1);
  });

  it('a cancel whose answer was lost returns the cancelled job on retry instead of a conflict', async () => {
    const queued = await client.enqueue({ type: 'example.echo', payload: 'to cancel' });
    open.seen.length = 0;
    open.fault = (s) => (s.n === 1 ? { kind: 'reset' } : undefined);

    const cancelled = await client.cancel(queued.id, { reason: 'changed my mind' });

    expect(cancelled).toMatchObject({ id: queued.id, status: 'failed' });
    expect(open.seen.map((s) => `${s.method} ${s.status}`)).toEqual(['POST 200', 'POST 409', 'GET 200']);
  });
});
