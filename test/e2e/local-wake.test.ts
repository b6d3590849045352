import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestSchema, postgresAvailable } from '../helpers/pg.ts';
import { type Spawned, spawnTs } from '../helpers/processes.ts';

/**
 * `npm start` with the deployed schedule (a consumer every 60 s): a trickle and a delayed job are
 * still served long before the next tick, by the wake path (issue 17). Bounds are conditions, not
 * speed: 15 s, against a tick 60 s away.
 */
const DEPLOYED_SHAPE = {
  PORT: '0',
  LOCAL_CONSUMER_INTERVAL_MS: '60000',
  LOCAL_REAPER_INTERVAL_MS: '60000',
  LOG_LEVEL: 'warn',
};
const BOUND_MS = 15_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startEngine(env: Record<string, string>): Promise<{ engine: Spawned; base: string }> {
  const engine = spawnTs('tools/local-engine.ts', { ...DEPLOYED_SHAPE, ...env });
  const [, port] = await engine.waitFor(/ready on port (\d+)/, 90_000);
  return { engine, base: `http://127.0.0.1:${port}` };
}

const post = async (base: string, body: unknown) => {
  const res = await fetch(`${base}/jobs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; runAt: string };
};

async function until<T>(what: string, fn: () => Promise<T | undefined>, boundMs: number): Promise<T> {
  const end = Date.now() + boundMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const wakeCount = async (base: string, outcome: string) => {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = text.match(new RegExp(`dte_wake_total\\{outcome="${outcome}"[^}]*\\} (\\d+)`));
  return m ? Number(m[1]) : 0;
};

const pgUp = await postgresAvailable();

describe('npm start with a 60 s schedule: wake on enqueue', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it.runIf(pgUp)(
    'serves 20 jobs enqueued 200 ms apart and a delayed job long before the next tick, through wake invokes',
    async () => {
      const t = await createTestSchema('e2ewake');
      const { engine, base } = await startEngine({ DATABASE_URL: t.url });
      const present = async () =>
        Number((await t.db.query<{ n: string }>('SELECT count(*) AS n FROM consumer_presence')).rows[0]!.n);
      try {
        // Prepare: the start-up invocations have been live and left (nobody live, no tick for ~60 s)
        await until(
          'the start-up consumers to register',
          async () => ((await present()) > 0 ? true : undefined),
          30_000,
        );
        await until(
          'the start-up consumers to leave',
          async () => ((await present()) === 0 ? true : undefined),
          30_000,
        );
        // Act: the trickle
        const ids: string[] = [];
        for (let i = 0; i < 20; i++) {
          ids.push((await post(base, { type: 'example.echo', payload: i })).id);
          await sleep(200);
        }
        // Assess: every job completed, each started within the bound of its enqueue
        const rows = await until(
          'the trickle to complete',
          async () => {
            const { rows } = await t.db.query<{ status: string; wait_ms: number }>(
              `SELECT status, extract(epoch FROM started_at - created_at) * 1000 AS wait_ms
                 FROM jobs WHERE id = ANY ($1::bigint[])`,
              [ids],
            );
            return rows.every((r) => r.status === 'completed') ? rows : undefined;
          },
          BOUND_MS + 4000,
        );
        expect(rows).toHaveLength(20);
        for (const r of rows) expect(Number(r.wait_ms)).toBeLessThan(BOUND_MS);
        expect(await wakeCount(base, 'invoked')).toBeGreaterThanOrEqual(1);
        expect(await wakeCount(base, 'check_failed')).toBe(0);

        // Prepare: the trickle's consumer has left too
        await until(
          'the consumers to leave',
          async () => ((await present()) === 0 ? true : undefined),
          30_000,
        );
        const invokedBefore = await wakeCount(base, 'invoked');
        // Act: a job delayed by 3 s
        const delayed = await post(base, { type: 'example.echo', payload: 'later', delaySeconds: 3 });
        // Assess: a wake invoke, and it started after its run_at and within the bound of it
        const late = await until(
          'the delayed job to complete',
          async () => {
            const { rows } = await t.db.query<{ status: string; late_ms: number }>(
              `SELECT status, extract(epoch FROM started_at - run_at) * 1000 AS late_ms FROM jobs WHERE id = $1`,
              [delayed.id],
            );
            return rows[0]?.status === 'completed' ? Number(rows[0].late_ms) : undefined;
          },
          3000 + BOUND_MS,
        );
        expect(late).toBeGreaterThanOrEqual(0);
        expect(late).toBeLessThan(BOUND_MS);
        expect(await wakeCount(base, 'invoked')).toBe(invokedBefore + 1);
      } finally {
        await engine.stop('SIGINT');
        await t.drop();
      }
    },
    180_000,
  );

  it('on the embedded database (PGlite): the wake check works and a job is served before the tick', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dte-pglite-wake-'));
    dirs.push(dir);
    const { engine, base } = await startEngine({ PGLITE_DIR: dir, DATABASE_URL: '', DATABASE_DSN: '' });
    try {
      const job = await post(base, { type: 'example.echo', payload: 'x' });
      await until(
        'the job to complete',
        async () => {
          const j = (await (await fetch(`${base}/jobs/${job.id}`)).json()) as { status: string };
          return j.status === 'completed' ? true : undefined;
        },
        BOUND_MS,
      );
      // The check ran on PGlite: it woke a consumer, or one was live (skipped); it never failed.
      expect((await wakeCount(base, 'invoked')) + (await wakeCount(base, 'skipped'))).toBe(1);
      expect(await wakeCount(base, 'check_failed')).toBe(0);
    } finally {
      expect(await engine.stop('SIGINT')).toBe(0);
    }
  }, 180_000);
});
