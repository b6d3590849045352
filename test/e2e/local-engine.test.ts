import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startProxy } from '../fault/proxy.ts';
import { createTestSchema, DATABASE_URL, postgresAvailable } from '../helpers/pg.ts';
import { ROOT, type Spawned, spawnTs } from '../helpers/processes.ts';

const FAST = {
  PORT: '0',
  LOCAL_CONSUMER_INTERVAL_MS: '200',
  LOCAL_REAPER_INTERVAL_MS: '1000',
  LOG_LEVEL: 'warn',
};

async function startEngine(env: Record<string, string>): Promise<{ engine: Spawned; base: string }> {
  const engine = spawnTs('tools/local-engine.ts', { ...FAST, ...env });
  const [, port] = await engine.waitFor(/ready on port (\d+)/, 90_000);
  return { engine, base: `http://127.0.0.1:${port}` };
}

async function waitForStatus(
  base: string,
  id: string,
  status: string,
  timeoutMs = 20_000,
): Promise<Record<string, unknown>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const job = (await (await fetch(`${base}/jobs/${id}`)).json()) as Record<string, unknown>;
    if (job.status === status || Date.now() > until) return job;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Posts a single and a batch job over HTTP and waits until all three are completed. */
async function roundTrip(base: string): Promise<string[]> {
  const single = await fetch(`${base}/jobs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ type: 'example.echo', payload: { hello: 'world' } }),
  });
  expect(single.status, await single.clone().text()).toBe(201);
  const batch = await fetch(`${base}/jobs/batch`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      jobs: [
        { type: 'example.echo', payload: 1 },
        { type: 'example.sleep', payload: { ms: 50 } },
      ],
    }),
  });
  expect(batch.status).toBe(201);
  const ids = [
    ((await single.json()) as { id: string }).id,
    ...((await batch.json()) as { jobs: Array<{ id: string }> }).jobs.map((j) => j.id),
  ];
  for (const id of ids)
    expect(await waitForStatus(base, id, 'completed')).toMatchObject({ status: 'completed', attempts: 1 });
  const first = (await (await fetch(`${base}/jobs/${ids[0]}`)).json()) as { result: unknown };
  expect(first.result).toEqual({ hello: 'world' });
  return ids;
}

const pgUp = await postgresAvailable();

describe('npm start (local engine) end to end', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('on the embedded database: serves the API, completes jobs, keeps them across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dte-pglite-'));
    dirs.push(dir);
    const env = { PGLITE_DIR: dir, DATABASE_URL: '', DATABASE_DSN: '' };
    const first = await startEngine(env);
    expect(first.engine.output()).toContain('embedded PGlite');
    const ids = await roundTrip(first.base).catch((err) => {
      throw new Error(`${(err as Error).message}\nengine output:\n${first.engine.output().slice(-4000)}`);
    });
    const metrics = await (await fetch(`${first.base}/metrics`)).text();
    for (const name of [
      'phase6_task_submitted_total 3',
      'phase6_task_completed_total 3',
      'phase6_task_failed_total 0',
      'phase6_task_recovered_total 0',
      'phase6_task_running 0',
    ]) {
      expect(metrics).toContain(name);
    }
    expect(await first.engine.stop('SIGINT')).toBe(0);
    expect(first.engine.output()).toContain('stopped cleanly');

    const second = await startEngine(env);
    expect(second.engine.output()).toMatch(/0 applied, \d+ already applied/);
    for (const id of ids)
      expect(await waitForStatus(second.base, id, 'completed', 1000)).toMatchObject({
        id,
        status: 'completed',
      });
    expect(await second.engine.stop('SIGINT')).toBe(0);
  }, 240_000);

  it.runIf(pgUp)(
    'on real PostgreSQL via DATABASE_URL: the same round trip',
    async () => {
      const t = await createTestSchema('e2e');
      try {
        const { engine, base } = await startEngine({ DATABASE_URL: t.url });
        expect(engine.output()).toContain('PostgreSQL at');
        const ids = await roundTrip(base);
        const { rows } = await t.db.query<{ n: string }>(
          "SELECT count(*) AS n FROM jobs WHERE status = 'completed'",
        );
        expect(Number(rows[0]!.n)).toBe(ids.length);
        // The release gate, machine-checked against the running local engine's /metrics.
        const preflight = spawnSync(
          process.execPath,
          ['tools/taskctl.mjs', 'preflight', '--metrics-url', `${base}/metrics`, '--json'],
          { cwd: ROOT, env: { ...process.env, DATABASE_URL: t.url }, encoding: 'utf8', timeout: 90_000 },
        );
        expect(preflight.status, `${preflight.stdout}\n${preflight.stderr}`).toBe(0);
        expect(JSON.parse(preflight.stdout)).toMatchObject({ ok: true });
        expect(await engine.stop('SIGINT')).toBe(0);
      } finally {
        await t.drop();
      }
    },
    120_000,
  );

  it.runIf(pgUp)(
    'during a database freeze, /health answers 503 within DB_QUERY_TIMEOUT_MS instead of hanging',
    async () => {
      const t = await createTestSchema('e2efreeze');
      const target = new URL(DATABASE_URL);
      const proxy = await startProxy({ host: target.hostname, port: Number(target.port || 5432) });
      let engine: Spawned | undefined;
      try {
        const url = new URL(t.url);
        url.host = `127.0.0.1:${proxy.port}`;
        const started = await startEngine({
          DATABASE_URL: url.toString(),
          LOCAL_CONSUMERS: '0',
          DB_QUERY_TIMEOUT_MS: '1500',
          DB_CONNECT_TIMEOUT_MS: '1500',
        });
        engine = started.engine;
        const { base } = started;
        expect((await fetch(`${base}/health`)).status).toBe(200);
        // Frozen: connections stay open and silent, as with a SIGSTOPped server or a dead path.
        proxy.blackhole();
        // The bound here is the client's patience (30 s); the old fixed 60 s query timeout
        // outlasted it.
        const res = await fetch(`${base}/health`, { signal: AbortSignal.timeout(30_000) });
        expect(res.status).toBe(503);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('database_unavailable');
      } finally {
        proxy.heal();
        await engine?.stop('SIGINT');
        await proxy.close();
        await t.drop();
      }
    },
    120_000,
  );
});
