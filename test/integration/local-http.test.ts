import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler } from '../../functions/api.ts';
import { enqueue } from '../../functions/engine/enqueue.ts';
import { createDb, type PgDb } from '../../functions/platform/db.ts';
import { createDashboard } from '../../tools/dashboard/index.ts';
import { createLocalHttp } from '../../tools/local-http.ts';
import { createLocalMetrics } from '../../tools/local-metrics.ts';
import { fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

/**
 * The local engine's HTTP front (what `npm start` serves) on a test schema: no other site in
 * the operator's browser may change jobs through it (a bodiless form POST, a no-cors fetch, a
 * rebound DNS name), and bad input or a database outage is never a 500.
 */
describe.runIf(await postgresAvailable())('local engine HTTP front', () => {
  let t: TestSchema;
  let down: PgDb;
  const servers: Server[] = [];
  let port: number;
  let downPort: number;

  const listen = async (db: PgDb) => {
    const server = createServer(
      createLocalHttp({
        api: createHandler({ db, env: { LOG_LEVEL: 'silent' }, logStream: logSink() }),
        dashboard: createDashboard({ db, token: 'local-http-test-token-0123456789' }),
        metrics: createLocalMetrics(db),
        context: () => fakeContext(),
      }),
    );
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return (server.address() as AddressInfo).port;
  };

  /** node:http, not fetch: a test must be able to send any Host and no Content-Type at all. */
  const send = (
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body?: string,
    to = port,
  ): Promise<{ status: number; body: string; headers: Record<string, unknown> }> =>
    new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: to, method, path, headers: { Host: `127.0.0.1:${to}`, ...headers } },
        (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const status = async (id: string) =>
    (await t.db.query<{ status: string }>('SELECT status FROM jobs WHERE id = $1', [id])).rows[0]!.status;

  beforeAll(async () => {
    t = await createTestSchema('localhttp');
    port = await listen(t.db);
    down = createDb({ connectionString: 'postgres://nobody@127.0.0.1:1/none', connectTimeoutMs: 1000 });
    downPort = await listen(down);
  });
  afterAll(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    await down?.end().catch(() => {});
    await t?.drop();
  });

  it('a cross-site cancel is refused: bodiless form POST, no-cors text/plain, typeless body; the job stays queued', async () => {
    // Prepare
    const { job } = await enqueue(t.db, { type: 'example.echo' });
    const path = `/jobs/${job.id}/cancel`;
    // Act: what a page on another origin can send without a CORS preflight
    const replies = [
      await send('POST', path, {
        'Content-Type': 'application/x-www-form-urlencoded',
        'Content-Length': '0',
      }),
      await send('POST', path, { 'Content-Type': 'text/plain;charset=UTF-8' }, '{"reason":"x"}'),
      await send('POST', path, { 'Content-Type': 'multipart/form-data; boundary=x' }, '--x--'),
      await send('POST', path, { 'Content-Length': '0' }),
      await send('POST', path, {}, '{"reason":"x"}'),
    ];
    // Assess
    for (const res of replies) {
      expect(res.status, res.body).toBe(415);
      expect(JSON.parse(res.body).error.code).toBe('unsupported_media_type');
    }
    expect(await status(job.id)).toBe('queued');
  });

  it('a JSON Content-Type from a loopback client changes, with or without a body; a foreign Origin does not', async () => {
    const a = (await enqueue(t.db, { type: 'example.echo' })).job;
    const b = (await enqueue(t.db, { type: 'example.echo' })).job;
    const c = (await enqueue(t.db, { type: 'example.echo' })).job;
    const foreign = await send(
      'POST',
      `/jobs/${c.id}/cancel`,
      { 'Content-Type': 'application/json', Origin: 'https://evil.example' },
      '{}',
    );
    expect(foreign.status).toBe(403);
    expect(JSON.parse(foreign.body).error.code).toBe('cross_origin_refused');
    expect(await status(c.id)).toBe('queued');
    expect((await send('POST', `/jobs/${a.id}/cancel`, { 'Content-Type': 'application/json' })).status).toBe(
      200,
    );
    const withBody = await send(
      'POST',
      `/jobs/${b.id}/cancel`,
      { 'Content-Type': 'Application/JSON', Origin: `http://localhost:${port}` },
      '{"reason":"done"}',
    );
    expect(withBody.status, withBody.body).toBe(200);
    expect(await status(a.id)).toBe('failed');
    expect(await status(b.id)).toBe('failed');
  });

  it('answers only to loopback Host names (DNS rebinding), reads included', async () => {
    const { job } = await enqueue(t.db, { type: 'example.echo' });
    for (const host of ['evil.example', `evil.example:${port}`, '127.0.0.1.evil.example']) {
      const read = await send('GET', `/jobs/${job.id}`, { Host: host });
      expect(read.status, host).toBe(403);
      expect(JSON.parse(read.body).error.code).toBe('host_not_allowed');
      const change = await send('POST', `/jobs/${job.id}/cancel`, {
        Host: host,
        'Content-Type': 'application/json',
      });
      expect(change.status).toBe(403);
      expect((await send('GET', '/metrics', { Host: host })).status).toBe(403);
    }
    expect(await status(job.id)).toBe('queued');
    for (const host of [`localhost:${port}`, `[::1]:${port}`, '127.0.0.1']) {
      expect((await send('GET', `/jobs/${job.id}`, { Host: host })).status, host).toBe(200);
    }
  });

  it('a bad percent-encoding in a path is 400, not 500', async () => {
    const res = await send('GET', '/jobs/%ZZ');
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error.code).toBe('invalid_path');
    expect((await send('POST', '/jobs/%E0%A4%A/cancel', { 'Content-Type': 'application/json' })).status).toBe(
      400,
    );
  });

  it('HEAD /health answers 200 without a body', async () => {
    const res = await send('HEAD', '/health');
    expect(res.status).toBe(200);
    expect(res.body).toBe('');
  });

  it('with the database down: /metrics and /health answer 503 with Retry-After, never 500', async () => {
    const metrics = await send('GET', '/metrics', {}, undefined, downPort);
    expect(metrics.status, metrics.body).toBe(503);
    expect(metrics.headers['retry-after']).toBe('5');
    expect(JSON.parse(metrics.body).error.code).toBe('database_unavailable');
    expect((await send('GET', '/health', {}, undefined, downPort)).status).toBe(503);
  });
});
