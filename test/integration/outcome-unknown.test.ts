import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ApiHandler, createHandler } from '../../functions/api.ts';
import { createDb, type PgDb } from '../../functions/platform/db.ts';
import { apiEvent, fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, DATABASE_URL, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { type CutProxy, startCutProxy } from '../helpers/pg-cut-proxy.ts';

/**
 * "Nothing was stored" only when nothing was sent. A real TCP proxy between the api and
 * PostgreSQL cuts (or freezes) the connection right after the server answered: the job is
 * stored, and the client must hear `outcome_unknown`, then get the same job back by retrying
 * with its Idempotency-Key.
 */
describe.runIf(await postgresAvailable())('outcome unknown: connection lost after the statement', () => {
  let t: TestSchema;
  let proxy: CutProxy;
  let viaProxy: PgDb;
  let api: ApiHandler;

  const call = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = (await api(
      apiEvent('POST', path, body, { 'Content-Type': 'application/json', ...headers }),
      fakeContext(),
    )) as APIGatewayProxyStructuredResultV2;
    return { ...res, json: JSON.parse(res.body ?? 'null') };
  };
  const count = async () =>
    Number((await t.db.query<{ n: string }>('SELECT count(*) AS n FROM jobs')).rows[0]!.n);

  beforeAll(async () => {
    t = await createTestSchema('outcome');
    const target = new URL(DATABASE_URL);
    proxy = await startCutProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const url = new URL(DATABASE_URL);
    url.host = `127.0.0.1:${proxy.port}`;
    viaProxy = createDb({
      connectionString: url.toString(),
      searchPath: t.schema,
      queryTimeoutMs: 1500,
      max: 1,
    });
    api = createHandler({ db: viaProxy, env: { LOG_LEVEL: 'silent' }, logStream: logSink() });
  });
  afterAll(async () => {
    await viaProxy?.end().catch(() => {});
    await proxy?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, job_counter_deltas');
  });

  it('a connection cut after the keyed insert was answered: the job is stored, the client hears outcome_unknown, and a retry with the same key returns that job', async () => {
    // Prepare
    const body = { type: 'example.echo', payload: { n: 1 } };
    // A keyed job is stored by `SELECT … FROM jobs_enqueue_keyed(…)` (migration 0009): tag SELECT.
    proxy.arm('SELECT', 'cut');
    // Act
    const lost = await call('/jobs', body, { 'Idempotency-Key': 'cut-1' });
    // Assess
    expect(proxy.fired).toBe(1);
    expect(lost.statusCode).toBe(503);
    expect(lost.json.error.code).toBe('outcome_unknown');
    expect(lost.json.error.message).toMatch(/Idempotency-Key/);
    expect(lost.json.error.message).not.toMatch(/nothing was stored/);
    expect(lost.headers?.['Retry-After']).toBe('5');
    expect(await count()).toBe(1);
    const retry = await call('/jobs', body, { 'Idempotency-Key': 'cut-1' });
    expect(retry.statusCode).toBe(200);
    const { rows } = await t.db.query<{ id: string }>('SELECT id::text AS id FROM jobs');
    expect(retry.json.id).toBe(rows[0]!.id);
    expect(await count()).toBe(1);
  });

  it('a frozen path after the enqueue statement was answered: the client-side query timeout is outcome_unknown too, and the job is stored', async () => {
    // An unkeyed job is stored by `SELECT * FROM jobs_enqueue_columns(…)`: its tag is SELECT.
    proxy.arm('SELECT', 'hold');
    const frozen = await call('/jobs', { type: 'example.echo', payload: 2 });
    expect(proxy.fired).toBe(2);
    expect(frozen.statusCode).toBe(503);
    expect(frozen.json.error.code).toBe('outcome_unknown');
    expect(await count()).toBe(1);
  });

  it('a keyed batch whose insert is answered but whose connection is cut before COMMIT: rolled back, so database_unavailable (nothing stored)', async () => {
    // BEGIN; SELECT … FROM jobs_enqueue_keyed(…); COMMIT: cut at the SELECT's answer.
    proxy.arm('SELECT', 'cut');
    const res = await call('/jobs/batch', {
      jobs: [
        { type: 'example.echo', payload: 1, idempotencyKey: 'b-1' },
        { type: 'example.echo', payload: 2, idempotencyKey: 'b-2' },
      ],
    });
    expect(res.statusCode).toBe(503);
    expect(res.json.error.code).toBe('database_unavailable');
    // The server notices the closed socket and rolls the open transaction back.
    await expect.poll(count, { timeout: 10_000 }).toBe(0);
    await expect
      .poll(async () => {
        const { rows } = await t.db.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND datname = current_database() AND application_name = 'durable-task-engine'",
        );
        return Number(rows[0]!.n);
      })
      .toBe(0);
    expect(await count()).toBe(0);
  });

  it('a keyed batch whose COMMIT was answered but never delivered: outcome_unknown, the jobs are stored, a replay returns them', async () => {
    const batch = {
      jobs: [
        { type: 'example.echo', payload: 1, idempotencyKey: 'c-1' },
        { type: 'example.echo', payload: 2, idempotencyKey: 'c-2' },
      ],
    };
    proxy.arm('COMMIT', 'cut');
    const res = await call('/jobs/batch', batch);
    expect(res.statusCode).toBe(503);
    expect(res.json.error.code).toBe('outcome_unknown');
    expect(await count()).toBe(2);
    const replay = await call('/jobs/batch', batch);
    expect(replay.statusCode).toBe(200);
    expect(replay.json.jobs.map((j: { created: boolean }) => j.created)).toEqual([false, false]);
    expect(await count()).toBe(2);
  });

  it('a read that loses its connection says database_unavailable (a read changes nothing)', async () => {
    const created = await call('/jobs', { type: 'example.echo', payload: 3 });
    expect(created.statusCode).toBe(201);
    proxy.arm('SELECT', 'cut');
    const res = (await api(
      apiEvent('GET', `/jobs/${created.json.id}`, undefined, {}),
      fakeContext(),
    )) as APIGatewayProxyStructuredResultV2;
    expect(res.statusCode).toBe(503);
    expect(JSON.parse(res.body!).error.code).toBe('database_unavailable');
  });
});
