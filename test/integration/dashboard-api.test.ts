import { spawn } from 'node:child_process';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { enqueue, enqueueMany } from '../../functions/engine/enqueue.ts';
import { putSchedule } from '../../functions/engine/schedules.ts';
import { claimJobs } from '../../functions/engine/sql/claimJobs.ts';
import { completeJobs } from '../../functions/engine/sql/completeJobs.ts';
import { failJob } from '../../functions/engine/sql/failJob.ts';
import { getJob } from '../../functions/engine/sql/getJob.ts';
import { cookieName, tokenMatches } from '../../tools/dashboard/auth.ts';
import { createDashboard, type DashboardServer, startDashboardServer } from '../../tools/dashboard/index.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

const TOKEN = 'test-token-0123456789abcdef-0123456789';
const claim = { workerId: 'w1', limit: 10, leaseSeconds: 30, queues: [] as string[] };

describe.runIf(await postgresAvailable())('dashboard JSON routes', () => {
  let t: TestSchema;
  let server: DashboardServer;
  let base: string;

  /** A request as the page makes it: token in the header, JSON body. */
  const call = (
    path: string,
    init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
  ) =>
    fetch(`${base}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        'X-Dashboard-Token': TOKEN,
        ...(init.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        ...init.headers,
      },
      body:
        init.body === undefined
          ? undefined
          : typeof init.body === 'string'
            ? init.body
            : JSON.stringify(init.body),
    });

  async function failedJob(): Promise<string> {
    const { job } = await enqueue(t.db, { type: 'example.flaky', queue: 'mail', maxAttempts: 1 });
    const [c] = await claimJobs(t.db, { ...claim, queues: ['mail'] });
    await failJob(t.db, {
      id: c!.id,
      leaseToken: c!.leaseToken,
      error: { message: 'boom', name: 'Error', stack: 'Error: boom\n    at x', attempt: 1, worker: 'w1' },
      permanent: true,
      backoffBaseSeconds: 2,
      maxBackoffSeconds: 600,
    });
    return job.id;
  }

  const snapshot = async () => ({
    jobs: (await t.db.query('SELECT id, status, attempts, lease_token, last_error FROM jobs ORDER BY id'))
      .rows,
    audit: (await t.db.query('SELECT count(*)::int AS n FROM job_audit')).rows[0],
    queues: (await t.db.query('SELECT name, paused FROM queues ORDER BY name')).rows,
  });

  async function expectError(res: Response, status: number, code?: string) {
    const text = await res.text();
    expect(res.status, text).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = JSON.parse(text) as { error: { code: string; message: string } };
    if (code) expect(body.error.code).toBe(code);
    expect(text).not.toMatch(/\n\s+at |\.ts:\d+/);
    return body;
  }

  beforeAll(async () => {
    t = await createTestSchema('dashapi');
    server = await startDashboardServer({
      db: t.db,
      token: TOKEN,
      actor: 'dashboard:test',
      cacheOverview: false,
    });
    base = `http://127.0.0.1:${server.port}`;
  });
  afterAll(async () => {
    await server?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas, job_audit');
  });

  it('answers 401 without the token, with a wrong one, and for a change authorised only by cookie or query', async () => {
    // Prepare
    const id = await failedJob();
    const before = await snapshot();
    const cookie = `${cookieName(TOKEN)}=${TOKEN}`;
    // Act
    const replies = await Promise.all([
      fetch(`${base}/`),
      fetch(`${base}/ui/app.js`),
      fetch(`${base}/api/dashboard/overview`),
      fetch(`${base}/api/dashboard/overview`, { headers: { 'X-Dashboard-Token': `${TOKEN}x` } }),
      fetch(`${base}/api/dashboard/jobs/${id}/retry`, { method: 'POST' }),
      fetch(`${base}/api/dashboard/jobs/${id}/retry?token=${TOKEN}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{}',
      }),
      fetch(`${base}/api/dashboard/queues/mail/pause`, {
        method: 'POST',
        headers: { Cookie: cookie, 'Content-Type': 'application/json' },
        body: '{}',
      }),
    ]);
    // Assess
    for (const res of replies) await expectError(res, 401, 'unauthorized');
    expect(await snapshot()).toEqual(before);
  });

  it('serves the page with the token, sets an HttpOnly SameSite=Strict cookie, and reads with that cookie', async () => {
    const page = await fetch(`${base}/?token=${TOKEN}`);
    const cookie = page.headers.get('set-cookie') ?? '';
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<meta name="dashboard-token"');
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    const overview = await fetch(`${base}/api/dashboard/overview`, {
      headers: { Cookie: cookie.split(';')[0]! },
    });
    expect(overview.status).toBe(200);
  });

  it('the cookie is a read-only session value, not the token: it reads, but shown as the change header it changes nothing, and a page served on it alone carries no token', async () => {
    const id = await failedJob();
    const before = await snapshot();
    const page = await fetch(`${base}/?token=${TOKEN}`);
    expect(await page.text()).toContain(`content="${TOKEN}"`);
    const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0]!;
    const value = cookie.slice(cookie.indexOf('=') + 1);
    expect(value).not.toBe(TOKEN);
    expect(value).not.toContain(TOKEN);
    expect((await fetch(`${base}/api/dashboard/overview`, { headers: { Cookie: cookie } })).status).toBe(200);
    // What another service on 127.0.0.1 receives (cookies are not separated by port) is no change token.
    const forged = await fetch(`${base}/api/dashboard/jobs/${id}/retry`, {
      method: 'POST',
      headers: { Cookie: cookie, 'X-Dashboard-Token': value, 'Content-Type': 'application/json' },
      body: '{}',
    });
    await expectError(forged, 401, 'unauthorized');
    const reloaded = await fetch(`${base}/`, { headers: { Cookie: cookie } });
    expect(reloaded.status).toBe(200);
    const html = await reloaded.text();
    expect(html).not.toContain(TOKEN);
    expect(html).toContain('<meta name="dashboard-token" content="" />');
    expect(await snapshot()).toEqual(before);
  });

  it('answers only to loopback Host names (DNS rebinding) and takes changes only from a loopback Origin', async () => {
    const id = await failedJob();
    const before = await snapshot();
    const { port } = new URL(base);
    const raw = (method: string, path: string, headers: Record<string, string>, body?: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, method, path, headers }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', reject);
        req.end(body);
      });
    for (const host of [
      'evil.example',
      `evil.example:${port}`,
      '127.0.0.1.nip.io',
      'localhost.evil.example',
    ]) {
      const res = await raw('GET', `/api/dashboard/overview`, { Host: host, 'X-Dashboard-Token': TOKEN });
      expect(res.status, host).toBe(403);
      expect(JSON.parse(res.body).error.code).toBe('host_not_allowed');
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'LOCALHOST']) {
      const res = await raw('GET', `/api/dashboard/overview`, { Host: host, 'X-Dashboard-Token': TOKEN });
      expect(res.status, host).toBe(200);
    }
    const crossOrigin = await raw(
      'POST',
      `/api/dashboard/jobs/${id}/retry`,
      {
        Host: `127.0.0.1:${port}`,
        Origin: 'https://evil.example',
        'X-Dashboard-Token': TOKEN,
        'Content-Type': 'application/json',
      },
      '{}',
    );
    expect(crossOrigin.status).toBe(403);
    expect(JSON.parse(crossOrigin.body).error.code).toBe('cross_origin_refused');
    expect(await snapshot()).toEqual(before);
  });

  it('a NUL or a lone surrogate in a reason is a 400, not a 500, and changes nothing', async () => {
    const id = await failedJob();
    const before = await snapshot();
    for (const body of ['{"reason":"a\\u0000b"}', '{"reason":"\\ud800"}']) {
      await expectError(await call(`/api/dashboard/jobs/${id}/retry`, { method: 'POST', body }), 400);
      await expectError(await call(`/api/dashboard/queues/mail/pause`, { method: 'POST', body }), 400);
    }
    const { job } = await enqueue(t.db, { type: 'example.echo', queue: 'mail' });
    const after = await snapshot();
    await expectError(
      await call(`/api/dashboard/jobs/${job.id}/cancel`, { method: 'POST', body: '{"reason":"x\\u0000"}' }),
      400,
    );
    expect(await snapshot()).toEqual(after);
    expect(after.audit).toEqual(before.audit);
  });

  it('answers 404 for an unknown job id on reads and on every action, and changes nothing', async () => {
    await failedJob();
    const before = await snapshot();
    await expectError(await call('/api/dashboard/jobs/987654321'), 404, 'not_found');
    for (const action of ['retry', 'requeue', 'cancel']) {
      const res = await call(`/api/dashboard/jobs/987654321/${action}`, {
        method: 'POST',
        body: { reason: 'x' },
      });
      await expectError(res, 404, 'not_found');
    }
    expect(await snapshot()).toEqual(before);
  });

  it('answers 400 for malformed ids and filter values', async () => {
    const bad = [
      '/api/dashboard/jobs/abc',
      '/api/dashboard/jobs/0',
      '/api/dashboard/jobs/99999999999999999999',
      '/api/dashboard/jobs?status=bogus',
      '/api/dashboard/jobs?queue=has%20space',
      '/api/dashboard/jobs?type=%3Cscript%3E',
      '/api/dashboard/jobs?limit=0',
      '/api/dashboard/jobs?limit=5000',
      '/api/dashboard/jobs?limit=ten',
      '/api/dashboard/jobs?before=-1',
      '/api/dashboard/jobs?status=failed&status=queued',
      '/api/dashboard/jobs?colour=red',
      `/api/dashboard/jobs?q=${'k'.repeat(256)}`,
      '/api/dashboard/failed?includeCancelled=yes',
      '/api/dashboard/failed?limit=501',
    ];
    for (const path of bad) await expectError(await call(path), 400);
  });

  it('refuses an oversized reason (400), an oversized body (413), a non-JSON body (415) and bad JSON (400), changing nothing', async () => {
    // Prepare
    const failed = await failedJob();
    const { job: queued } = await enqueue(t.db, { type: 'example.echo', queue: 'mail' });
    const before = await snapshot();
    // Act, Assess
    await expectError(
      await call(`/api/dashboard/jobs/${queued.id}/cancel`, {
        method: 'POST',
        body: { reason: 'r'.repeat(501) },
      }),
      400,
      'validation_error',
    );
    await expectError(
      await call(`/api/dashboard/jobs/${failed}/retry`, {
        method: 'POST',
        body: { reason: 'r'.repeat(100_000) },
      }),
      413,
      'payload_too_large',
    );
    await expectError(
      await call(`/api/dashboard/jobs/${queued.id}/cancel`, { method: 'POST', body: { reason: '   ' } }),
      400,
    );
    await expectError(
      await call(`/api/dashboard/jobs/${queued.id}/cancel`, { method: 'POST', body: {} }),
      400,
    );
    await expectError(
      await call(`/api/dashboard/jobs/${queued.id}/cancel`, {
        method: 'POST',
        body: { reason: 'x', extra: true },
      }),
      400,
    );
    await expectError(
      await call(`/api/dashboard/jobs/${queued.id}/cancel`, {
        method: 'POST',
        body: 'reason=x',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      }),
      415,
    );
    await expectError(
      await call(`/api/dashboard/jobs/${queued.id}/cancel`, { method: 'POST', body: '{"reason":' }),
      400,
      'invalid_json',
    );
    await expectError(
      await call('/api/dashboard/queues/bad%20name/pause', { method: 'POST', body: {} }),
      400,
    );
    await expectError(
      await call('/api/dashboard/retry-failed', { method: 'POST', body: { targets: [] } }),
      400,
    );
    await expectError(await call('/api/dashboard/overview', { method: 'POST', body: {} }), 405);
    await expectError(await call('/api/dashboard/nothing-here'), 404, 'route_not_found');
    expect(await snapshot()).toEqual(before);
  });

  it('answers 409 for an action on a job in the wrong state, or one that changed since it was shown', async () => {
    const { job: queued } = await enqueue(t.db, { type: 'example.echo' });
    const failed = await failedJob();
    const before = await snapshot();
    await expectError(
      await call(`/api/dashboard/jobs/${queued.id}/retry`, { method: 'POST', body: {} }),
      409,
    );
    await expectError(
      await call(`/api/dashboard/jobs/${queued.id}/requeue`, { method: 'POST', body: {} }),
      409,
    );
    await expectError(
      await call(`/api/dashboard/jobs/${failed}/cancel`, { method: 'POST', body: { reason: 'x' } }),
      409,
      'job_terminal',
    );
    // The operator saw lease token 0; the job has been claimed once since (token 1).
    await expectError(
      await call(`/api/dashboard/jobs/${failed}/retry`, { method: 'POST', body: { leaseToken: '0' } }),
      409,
      'changed_meanwhile',
    );
    expect(await snapshot()).toEqual(before);
  });

  it('retries a failed job with a fresh budget and records it as taskctl does', async () => {
    const id = await failedJob();
    const res = await call(`/api/dashboard/jobs/${id}/retry`, {
      method: 'POST',
      body: { reason: 'SMTP creds rotated', leaseToken: '1' },
    });
    expect(res.status).toBe(200);
    expect(await getJob(t.db, id)).toMatchObject({ status: 'queued', attempts: 0 });
    const { rows } = await t.db.query('SELECT action, actor, reason FROM job_audit WHERE job_id = $1', [id]);
    expect(rows).toEqual([{ action: 'retry-failed', actor: 'dashboard:test', reason: 'SMTP creds rotated' }]);
  });

  it('bulk retry requeues exactly the previewed failed jobs and skips one that changed meanwhile', async () => {
    // Prepare
    const a = await failedJob();
    const b = await failedJob();
    const preview = (await (await call('/api/dashboard/failed?queue=mail')).json()) as {
      jobs: Array<{ id: string; leaseToken: string }>;
    };
    await t.db.query(`UPDATE jobs SET status = 'queued', updated_at = now() WHERE id = $1`, [b]);
    // Act
    const res = await call('/api/dashboard/retry-failed', {
      method: 'POST',
      body: { targets: preview.jobs.map((j) => ({ id: j.id, leaseToken: j.leaseToken })) },
    });
    // Assess
    expect(preview.jobs.map((j) => j.id).sort()).toEqual([a, b].sort());
    expect(await res.json()).toEqual({ requeued: [a], skipped: [b] });
    expect(await getJob(t.db, a)).toMatchObject({ status: 'queued', attempts: 0 });
  });

  it('lists newest first by keyset pages that neither overlap nor skip, and finds by id or idempotency key', async () => {
    await enqueueMany(
      t.db,
      Array.from({ length: 7 }, (_, i) => ({ type: 'example.echo', payload: i, idempotencyKey: `key-${i}` })),
    );
    const page1 = (await (await call('/api/dashboard/jobs?limit=3')).json()) as {
      jobs: Array<{ id: string }>;
      nextCursor: string;
    };
    const page2 = (await (await call(`/api/dashboard/jobs?limit=3&before=${page1.nextCursor}`)).json()) as {
      jobs: Array<{ id: string }>;
      nextCursor: string;
    };
    const page3 = (await (await call(`/api/dashboard/jobs?limit=3&before=${page2.nextCursor}`)).json()) as {
      jobs: Array<{ id: string }>;
      nextCursor: string | null;
    };
    const ids = [...page1.jobs, ...page2.jobs, ...page3.jobs].map((j) => Number(j.id));
    const all = (await t.db.query<{ id: string }>('SELECT id FROM jobs ORDER BY id DESC')).rows.map((r) =>
      Number(r.id),
    );
    expect(ids).toEqual(all);
    expect(page3.nextCursor).toBeNull();
    expect(page1.jobs[0]).not.toHaveProperty('payload');
    const byKey = (await (await call('/api/dashboard/jobs?q=key-4')).json()) as {
      jobs: Array<{ idempotencyKey: string }>;
    };
    expect(byKey.jobs.map((j) => j.idempotencyKey)).toEqual(['key-4']);
    const byId = (await (await call(`/api/dashboard/jobs?q=${all[0]}`)).json()) as {
      jobs: Array<{ id: string }>;
    };
    expect(byId.jobs.map((j) => j.id)).toEqual([String(all[0])]);
  });

  it('overview shows per-queue counts, the last hour per minute, and the five required metrics', async () => {
    await failedJob();
    await enqueueMany(t.db, [
      { type: 'a', queue: 'mail' },
      { type: 'a', queue: 'mail' },
      { type: 'a', queue: 'bulk' },
    ]);
    const [c] = await claimJobs(t.db, { ...claim, limit: 1, queues: ['mail'] });
    await completeJobs(t.db, [{ id: c!.id, leaseToken: c!.leaseToken }]);
    const res = await call('/api/dashboard/overview');
    const body = (await res.json()) as {
      queues: Array<Record<string, unknown>>;
      history: Array<{ completed: number; failed: number }>;
      metrics: { text: string; values: Record<string, number> };
    };
    expect(body.queues.find((q) => q.queue === 'mail')).toMatchObject({
      queued: 1,
      running: 0,
      completed: 1,
      failed: 1,
      paused: false,
    });
    expect(body.history).toHaveLength(60);
    // Summed, not the last minute alone: the two changes may straddle a minute boundary.
    const sum = (k: 'completed' | 'failed') => body.history.reduce((n, m) => n + m[k], 0);
    expect({ completed: sum('completed'), failed: sum('failed') }).toEqual({ completed: 1, failed: 1 });
    expect(body.metrics.values).toEqual({
      phase6_task_submitted_total: 4,
      phase6_task_running: 0,
      phase6_task_completed_total: 1,
      phase6_task_failed_total: 1,
      phase6_task_recovered_total: 0,
    });
    expect(body.metrics.text).toMatch(/^# TYPE phase6_task_failed_total counter$/m);
  });

  it('shares one overview between refreshes, and shows a change made through the dashboard at once', async () => {
    // Prepare: a dashboard with the overview cache on (the default).
    const cached = await startDashboardServer({ db: t.db, token: TOKEN });
    const get = async () =>
      (await (
        await fetch(`http://127.0.0.1:${cached.port}/api/dashboard/overview`, {
          headers: { 'X-Dashboard-Token': TOKEN },
        })
      ).json()) as { queues: Array<{ queue: string; queued: number; paused: boolean }> };
    try {
      await enqueue(t.db, { type: 'a', queue: 'mail' });
      // Act
      const first = await get();
      await enqueue(t.db, { type: 'a', queue: 'mail' });
      const second = await get();
      const paused = await fetch(`http://127.0.0.1:${cached.port}/api/dashboard/queues/mail/pause`, {
        method: 'POST',
        headers: { 'X-Dashboard-Token': TOKEN, 'Content-Type': 'application/json' },
        body: '{}',
      });
      const third = await get();
      // Assess: the second read is the first build (well within its 2 s); the pause rebuilt it.
      expect(first.queues).toMatchObject([{ queue: 'mail', queued: 1, paused: false }]);
      expect(second).toEqual(first);
      expect(paused.status).toBe(200);
      expect(third.queues).toMatchObject([{ queue: 'mail', queued: 2, paused: true }]);
    } finally {
      await cached.close();
    }
  });

  describe('schedules and queue limits', () => {
    const limitsOf = async (name: string) =>
      (
        await t.db.query('SELECT max_running, rate_per_second, rate_burst FROM queues WHERE name = $1', [
          name,
        ])
      ).rows[0] ?? null;
    const auditRows = async () =>
      (await t.db.query('SELECT action, actor, queue, reason, details FROM job_audit ORDER BY id')).rows;
    const scheduleState = async (name: string) =>
      (await t.db.query('SELECT enabled FROM schedules WHERE name = $1', [name])).rows[0]?.enabled;
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      call(`/api/dashboard${path}`, { method: 'POST', body, headers });

    beforeEach(async () => {
      await t.db.query('TRUNCATE schedules');
      await putSchedule(t.db, {
        name: 'nightly',
        cron: '0 3 * * *',
        type: 'report.render',
        queue: 'reports',
      });
    });

    it('pauses and resumes a schedule, each with an audit row, and shows it in the overview', async () => {
      // Act
      const paused = await post('/schedules/nightly/pause', { reason: 'INC-9 hold reports' });
      const whilePaused = await scheduleState('nightly');
      const overview = (await (await call('/api/dashboard/overview')).json()) as {
        schedules: Array<{ name: string; enabled: boolean }>;
      };
      const resumed = await post('/schedules/nightly/resume', {});
      // Assess
      expect(paused.status).toBe(200);
      expect(await paused.json()).toEqual({ schedule: 'nightly', enabled: false });
      expect(whilePaused).toBe(false);
      expect(overview.schedules).toMatchObject([{ name: 'nightly', enabled: false }]);
      expect(resumed.status).toBe(200);
      expect(await scheduleState('nightly')).toBe(true);
      expect(await auditRows()).toEqual([
        {
          action: 'schedule-pause',
          actor: 'dashboard:test',
          queue: 'reports',
          reason: 'INC-9 hold reports',
          details: { schedule: 'nightly' },
        },
        {
          action: 'schedule-resume',
          actor: 'dashboard:test',
          queue: 'reports',
          reason: null,
          details: { schedule: 'nightly' },
        },
      ]);
    });

    it('refuses a schedule change for an unknown or malformed name (404/400), and one without the change token (401)', async () => {
      // Act
      const unknown = await post('/schedules/nope/pause', {});
      const malformed = await post(`/schedules/${encodeURIComponent('a b')}/pause`, {});
      const stranger = await post('/schedules/nightly/pause', { enabled: false });
      const noToken = await fetch(`${base}/api/dashboard/schedules/nightly/pause`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{}',
      });
      // Assess
      await expectError(unknown, 404);
      expect((await expectError(malformed, 400)).error.message).toMatch(/schedule name must be/);
      await expectError(stranger, 400);
      await expectError(noToken, 401, 'unauthorized');
      expect(await scheduleState('nightly')).toBe(true);
      expect(await auditRows()).toEqual([]);
    });

    it('sets, changes and removes a queue limit, each with an audit row, and the overview shows it', async () => {
      // Act
      const set = await post('/queues/mail/limits', {
        maxRunning: 3,
        rate: 20,
        burst: 40,
        reason: 'INC-10 SMTP quota',
      });
      const afterSet = await limitsOf('mail');
      const overview = (await (await call('/api/dashboard/overview')).json()) as { limits: unknown };
      const removeRate = await post('/queues/mail/limits', { rate: null });
      const afterRemoveRate = await limitsOf('mail');
      const removeAll = await post('/queues/mail/limits', { maxRunning: null });
      // Assess
      expect(set.status).toBe(200);
      expect(await set.json()).toEqual({ name: 'mail', maxRunning: 3, ratePerSecond: 20, rateBurst: 40 });
      expect(afterSet).toEqual({ max_running: 3, rate_per_second: 20, rate_burst: 40 });
      expect(overview.limits).toEqual([{ name: 'mail', maxRunning: 3, ratePerSecond: 20, rateBurst: 40 }]);
      expect(removeRate.status).toBe(200);
      expect(afterRemoveRate).toEqual({ max_running: 3, rate_per_second: null, rate_burst: null });
      expect(removeAll.status).toBe(200);
      expect(await limitsOf('mail')).toEqual({ max_running: null, rate_per_second: null, rate_burst: null });
      expect(await auditRows()).toEqual([
        {
          action: 'set-limit',
          actor: 'dashboard:test',
          queue: 'mail',
          reason: 'INC-10 SMTP quota',
          details: { maxRunning: 3, rate: 20, burst: 40 },
        },
        {
          action: 'set-limit',
          actor: 'dashboard:test',
          queue: 'mail',
          reason: null,
          details: { rate: null },
        },
        {
          action: 'set-limit',
          actor: 'dashboard:test',
          queue: 'mail',
          reason: null,
          details: { maxRunning: null },
        },
      ]);
    });

    it("sets a queue's retention with an audit row, the overview shows it; a bad value is a 400 and stores nothing", async () => {
      // Act
      const set = await post('/queues/metrics/retention', { retention: 'delete', reason: 'INC-88' });
      const overview = (await (await call('/api/dashboard/overview')).json()) as { retention: unknown };
      const bad = await post('/queues/other/retention', { retention: 'forever' });
      // Assess
      expect(set.status).toBe(200);
      expect(await set.json()).toEqual({ name: 'metrics', retention: 'delete' });
      expect(overview.retention).toEqual([{ name: 'metrics', retention: 'delete' }]);
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/retention/);
      expect((await t.db.query(`SELECT * FROM queues WHERE name = 'other'`)).rows).toEqual([]);
      expect(await auditRows()).toEqual([
        {
          action: 'set-retention',
          actor: 'dashboard:test',
          queue: 'metrics',
          reason: 'INC-88',
          details: { retention: 'delete', previous: 'keep' },
        },
      ]);
    });

    it('refuses bad limits with a 400 naming the field, and stores nothing', async () => {
      // Prepare
      await post('/queues/mail/limits', { maxRunning: 2 });
      const before = { limits: await limitsOf('mail'), audit: await auditRows() };
      const cases: Array<[unknown, RegExp]> = [
        [{ maxRunning: -1 }, /maxRunning must be an integer from 1/],
        [{ maxRunning: 0 }, /maxRunning must be an integer from 1/],
        [{ maxRunning: 2.5 }, /maxRunning must be an integer/],
        [{ maxRunning: '3' }, /maxRunning must be a number, or null/],
        [{ rate: 0 }, /rate must be a number of jobs per second above 0/],
        [{ rate: 5, burst: 0 }, /burst must be an integer from 1/],
        [{ maxRunning: null, burst: 5 }, /burst needs a rate/],
        [{}, /give maxRunning and\/or rate/],
        [{ reason: 'only a reason' }, /give maxRunning and\/or rate/],
        [{ maxRunning: 3, max_running: 3 }, /max_running/],
        [[3], /expected object|object/i],
      ];
      // Act
      const replies = [];
      for (const [body, message] of cases)
        replies.push({ message, res: await post('/queues/mail/limits', body) });
      const badName = await post(`/queues/${encodeURIComponent('a b')}/limits`, { maxRunning: 3 });
      // Assess
      for (const { message, res } of replies)
        expect((await expectError(res, 400)).error.message).toMatch(message);
      await expectError(badName, 400);
      expect({ limits: await limitsOf('mail'), audit: await auditRows() }).toEqual(before);
    });

    it('refuses a limit change without the change token: none, a wrong one, the cookie, or ?token= (401), storing nothing', async () => {
      // Prepare
      const page = await fetch(`${base}/?token=${TOKEN}`);
      const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0]!;
      const body = JSON.stringify({ maxRunning: 1 });
      const json = { 'Content-Type': 'application/json' };
      // Act
      const replies = await Promise.all([
        fetch(`${base}/api/dashboard/queues/mail/limits`, { method: 'POST', headers: json, body }),
        fetch(`${base}/api/dashboard/queues/mail/limits`, {
          method: 'POST',
          headers: { ...json, 'X-Dashboard-Token': `${TOKEN}x` },
          body,
        }),
        fetch(`${base}/api/dashboard/queues/mail/limits`, {
          method: 'POST',
          headers: { ...json, Cookie: cookie },
          body,
        }),
        fetch(`${base}/api/dashboard/queues/mail/limits?token=${TOKEN}`, {
          method: 'POST',
          headers: json,
          body,
        }),
      ]);
      const foreign = await post('/queues/mail/limits', { maxRunning: 1 }, { Origin: 'http://evil.example' });
      // Assess
      for (const res of replies) await expectError(res, 401, 'unauthorized');
      expect(foreign.status).toBe(403);
      expect(await limitsOf('mail')).toBeNull();
      expect(await auditRows()).toEqual([]);
    });
  });

  it('leaves every other path to its host server untouched (the local engine mount)', async () => {
    // Prepare: the dashboard mounted in front of a stand-in for the API handler.
    const dashboard = createDashboard({ db: t.db, token: TOKEN });
    const host: Server = createServer(async (req, res) => {
      if (await dashboard.handle(req, res)) return;
      let body = '';
      for await (const chunk of req) body += chunk;
      res.writeHead(299, { 'Content-Type': 'text/plain' });
      res.end(`api saw ${req.method} ${req.url} ${body}`);
    });
    await new Promise<void>((r) => host.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;
    try {
      // Act
      const post = await fetch(`${url}/jobs`, { method: 'POST', body: '{"type":"x"}' });
      const health = await fetch(`${url}/health`);
      const root = await fetch(`${url}${dashboard.entryPath}`);
      // Assess
      expect(await post.text()).toBe('api saw POST /jobs {"type":"x"}');
      expect(health.status).toBe(299);
      expect(root.status).toBe(200);
    } finally {
      await new Promise<void>((r) => host.close(() => r()));
    }
  });

  it('refuses a DASHBOARD_TOKEN that is too short, and compares tokens whatever their length', () => {
    expect(() => createDashboard({ db: t.db, token: 'short' })).toThrow(/at least 24 characters/);
    expect(tokenMatches(TOKEN, TOKEN)).toBe(true);
    expect(tokenMatches(TOKEN, TOKEN.slice(0, -1))).toBe(false);
    expect(tokenMatches(TOKEN, '')).toBe(false);
    expect(tokenMatches(TOKEN, undefined)).toBe(false);
  });

  it('taskctl dashboard prints a loopback URL with DASHBOARD_TOKEN, serves it, and stops cleanly on SIGINT', async () => {
    // Prepare
    const child = spawn(
      process.execPath,
      [join(import.meta.dirname, '..', '..', 'tools', 'taskctl.mjs'), 'dashboard', '--port', '0'],
      {
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '',
          DATABASE_URL: t.url,
          DASHBOARD_TOKEN: TOKEN,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      // Act
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (chunk) => {
          out += chunk;
          const m = /dashboard: (http:\/\/\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.on('exit', () => reject(new Error(`taskctl dashboard exited before printing its URL: ${out}`)));
      });
      const page = await fetch(url);
      const anonymous = await fetch(new URL('/api/dashboard/overview', url));
      child.kill('SIGINT');
      // Assess
      expect(url).toBe(`${new URL(url).origin}/?token=${TOKEN}`);
      expect(new URL(url).hostname).toBe('127.0.0.1');
      expect(page.status).toBe(200);
      expect(anonymous.status).toBe(401);
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
