import pg from 'pg';
import { loadMigrations, migrate } from '../../functions/engine/index.ts';
import { createDb, type PgDb } from '../../functions/platform/db.ts';
import { migrationsDir } from '../../functions/platform/paths.ts';

/** The database the harness connects to for CREATE/DROP DATABASE (never benchmarked itself). */
export const ADMIN_URL =
  process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';

export function urlFor(database: string): string {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${database}`;
  return u.toString();
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface FreshDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

const NAME = /^bench_[a-z0-9_]{1,50}$/;

/**
 * CREATE DATABASE bench_<pid>_<name>: the process id keeps two runs on one server (engineers
 * sharing a machine) out of each other's databases. A leftover of the same name is dropped first.
 */
export async function freshDatabase(name: string): Promise<FreshDatabase> {
  const db = `bench_${process.pid}_${name}`;
  if (!NAME.test(db)) throw new Error(`bad bench database name ${db}`);
  await admin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${db}`);
  });
  return {
    name: db,
    url: urlFor(db),
    drop: () => admin(async (c) => void (await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`))),
  };
}

/** Whether a process of this id runs on this host (the bench is loopback-only: the same host). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Drops the bench_* databases crashed runs left behind (only ours: the prefix is reserved). A
 * database of a run still going (its process is alive; for names without a process id, one
 * with a connection) is left alone: dropping it WITH (FORCE) would break that run.
 */
export async function dropLeftovers(): Promise<string[]> {
  return admin(async (c) => {
    const { rows } = await c.query<{ datname: string; connected: boolean }>(
      `SELECT datname, EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname) AS connected
       FROM pg_database d WHERE datname LIKE 'bench\\_%'`,
    );
    const dropped: string[] = [];
    for (const r of rows) {
      const pid = /^bench_(\d+)_/.exec(r.datname)?.[1];
      const live = pid ? Number(pid) !== process.pid && running(Number(pid)) : r.connected;
      if (live || !NAME.test(r.datname)) continue;
      await c.query(`DROP DATABASE IF EXISTS ${r.datname} WITH (FORCE)`);
      dropped.push(r.datname);
    }
    return dropped;
  });
}

export async function serverVersion(): Promise<string> {
  return admin(
    async (c) =>
      (await c.query<{ v: string }>('SELECT current_setting($1) AS v', ['server_version'])).rows[0]!.v,
  );
}

/** A pool on `url` through the project's own seam (functions/platform/db.ts). */
export function engineDb(url: string, max: number, applicationName = 'bench'): PgDb {
  return createDb({ connectionString: url, max, applicationName, queryTimeoutMs: 120_000 });
}

/** Applies the project's migrations with its own runner. */
export async function migrateEngine(url: string): Promise<void> {
  const db = engineDb(url, 1, 'bench-migrate');
  try {
    await migrate(db, loadMigrations(migrationsDir()));
  } finally {
    await db.end();
  }
}

/**
 * Bench-only switch (issue 4): the exact counters are statement-level triggers; disabling them
 * on the benchmark database measures what counting costs. Never done outside bench databases.
 */
export async function setCounting(url: string, on: boolean): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(
      `ALTER TABLE jobs ${on ? 'ENABLE' : 'DISABLE'} TRIGGER jobs_count_updated, ${on ? 'ENABLE' : 'DISABLE'} TRIGGER jobs_count_inserted`,
    );
  } finally {
    await client.end();
  }
}
