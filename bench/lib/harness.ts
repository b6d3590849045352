/**
 * What every scenario and system shares: a fresh database per system and round (always
 * dropped, also on Ctrl-C), one-off SQL, the ANALYZE before a drain, the bench-only
 * dependencies and the handlers module (imported once DATABASE_URL has a default).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { ADMIN_URL, type FreshDatabase, freshDatabase } from './pg.ts';
import { log } from './results.ts';
import type { PeerAdapter, PooledPeerAdapter } from './types.ts';

export const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const ROOT = dirname(BENCH_DIR);
export const RESULTS = join(BENCH_DIR, 'results');

/** Databases of running systems, dropped on SIGINT/SIGTERM. */
const open = new Set<FreshDatabase>();

/** Adopts a database made elsewhere (the bigtable scenario's, kept over its rounds) until `fn` ends. */
export async function holding<T>(db: FreshDatabase, fn: (db: FreshDatabase) => Promise<T>): Promise<T> {
  open.add(db);
  try {
    return await fn(db);
  } finally {
    open.delete(db);
    await db.drop();
  }
}

/** A fresh database for one system in one round, always dropped. */
export async function withDatabase<T>(name: string, fn: (db: FreshDatabase) => Promise<T>): Promise<T> {
  return holding(await freshDatabase(name), fn);
}

/** Process-wide handlers of a bench run: signals drop the open databases; one expected error is ignored. */
export function installProcessHandlers(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: dropping ${[...open].map((d) => d.name).join(', ') || 'nothing'} and stopping`);
      void Promise.allSettled([...open].map((d) => d.drop())).then(() => process.exit(130));
    });
  }
  // Each system's database is dropped WITH (FORCE) after its run; a peer's idle pool client that
  // outlived its runner then sees 57P01 and, with no listener, would crash the whole run (seen with
  // graphile-worker after the 100,000-job scale round). That one error is expected; others are not.
  process.on('uncaughtException', (err: Error & { code?: string }) => {
    if (err.code === '57P01') {
      process.stderr.write(`ignored after a forced database drop: ${err.message}\n`);
      return;
    }
    throw err;
  });
}

export async function sql(url: string, text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(text, values);
  } finally {
    await c.end();
  }
}

/**
 * After the enqueue and before the drain, every system's database gets ANALYZE: a freshly
 * filled, never-analyzed table makes the planner guess, and a long-lived queue table has
 * statistics. The never-analyzed case of our engine is measured separately (engine-fn-cold).
 */
export const analyze = (url: string): Promise<pg.QueryResult> => sql(url, 'ANALYZE');

/** `count` no-op jobs inserted in one statement (claim, reaper, rss scenarios set their own columns). */
export const insertQueued = (url: string, count: number): Promise<pg.QueryResult> =>
  sql(
    url,
    `INSERT INTO jobs (task_type, payload) SELECT 'example.echo', '{}'::jsonb FROM generate_series(1, $1::int)`,
    [count],
  );

/** The peers are bench/'s own dependencies: install them on first use (a clean clone has none). */
export function ensureBenchDeps(): void {
  if (
    existsSync(join(BENCH_DIR, 'node_modules', 'graphile-worker')) &&
    existsSync(join(BENCH_DIR, 'node_modules', 'pg-boss'))
  )
    return;
  console.log('installing bench dependencies (npm ci --prefix bench) …');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['ci', '--prefix', BENCH_DIR, '--no-audit', '--no-fund', '--loglevel=error'], {
    stdio: 'inherit',
  });
  if (r.status !== 0) throw new Error('npm ci --prefix bench failed');
}

/** Loaded by URL so the project's type check never needs bench/node_modules. */
export async function loadPeer(file: string): Promise<PeerAdapter> {
  const mod = (await import(pathToFileURL(join(BENCH_DIR, 'peers', file)).href)) as { adapter: PeerAdapter };
  return mod.adapter;
}

/** A peer's serverless adapter (the pgbouncer scenario), loaded by URL like the others. */
export async function loadPooledPeer(file: string): Promise<PooledPeerAdapter> {
  const mod = (await import(pathToFileURL(join(BENCH_DIR, 'peers', file)).href)) as {
    adapter: PooledPeerAdapter;
  };
  return mod.adapter;
}

type Handlers = typeof import('./handlers.ts');
let loaded: Handlers | undefined;

/** The handlers module, imported once DATABASE_URL has a default (their module scope reads it). */
export async function handlers(): Promise<Handlers> {
  process.env.DATABASE_URL ??= ADMIN_URL;
  loaded ??= await import('./handlers.ts');
  return loaded;
}
