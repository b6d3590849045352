import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { readCounters } from '../../functions/engine/index.ts';
import type { Queryable } from '../../functions/engine/queryable.ts';
import { createDb, type PgDb } from '../../functions/platform/db.ts';
import { DATABASE_URL } from '../helpers/pg.ts';

// Helpers of partitions.test.ts: the schema as it was before migration 0022, and where a row is.

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The last commit before 0022 (the merge base of `rowmodel` and `main`): its numbered migrations
 * and function files are the schema an upgrade starts from. Pinned, so the test keeps testing
 * the upgrade once `main` has 0022 itself.
 */
export const BEFORE_0022 = 'eb1856be0909198d3f5f640e276e72e8c731129f';

const gitShow = (path: string) =>
  execFileSync('git', ['-C', repoRoot, 'show', `${BEFORE_0022}:${path}`], { encoding: 'utf8' });

/** A temp dir holding migrations/ as of BEFORE_0022 (numbered files and function files). */
export function migrationsBefore0022(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'dte-pre0022-'));
  mkdirSync(join(dir, 'functions'));
  const listed = execFileSync(
    'git',
    ['-C', repoRoot, 'ls-tree', '-r', '--name-only', BEFORE_0022, 'migrations/'],
    {
      encoding: 'utf8',
    },
  )
    .split('\n')
    .filter((p) => /^migrations\/(\d{4}_[^/]+|functions\/[^/]+)\.sql$/.test(p));
  for (const path of listed) writeFileSync(join(dir, path.slice('migrations/'.length)), gitShow(path));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Sanity for the pinned commit: it has no 0022 and no partition functions. */
export function before0022Files(dir: string): string[] {
  return [...readdirSync(dir), ...readdirSync(join(dir, 'functions')).map((f) => `functions/${f}`)].sort();
}

export interface BareSchema {
  name: string;
  db: PgDb;
  drop(): Promise<void>;
}

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: DATABASE_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** An empty schema and a pool on it (createTestSchema would migrate it). */
export async function bareSchema(prefix: string): Promise<BareSchema> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  await admin(`CREATE SCHEMA ${name}`);
  const db = createDb({ connectionString: DATABASE_URL, searchPath: name, max: 4 });
  return {
    name,
    db,
    async drop() {
      await db.end().catch(() => {});
      await admin(`DROP SCHEMA ${name} CASCADE`);
    },
  };
}

/** The partition of `jobs` holding job `id` (null when no partition does). */
export async function partitionOf(db: Queryable, id: string): Promise<string | null> {
  const { rows } = await db.query<{ p: string }>(
    'SELECT tableoid::regclass::text AS p FROM jobs WHERE id = $1',
    [id],
  );
  return rows[0]?.p ?? null;
}

/** The name jobs_partitions_ensure gives the partition of the UTC day `offset` days from today. */
export async function dayPartition(db: Queryable, offset: number): Promise<string> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT 'jobs_finished_' || to_char((date_trunc('day', now(), 'UTC') + make_interval(days => $1::int))
            AT TIME ZONE 'UTC', 'YYYYMMDD') AS name`,
    [offset],
  );
  return rows[0]!.name;
}

/** The partitions attached to `jobs`, by name. */
export async function attachedPartitions(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ p: string }>(
    `SELECT inhrelid::regclass::text AS p FROM pg_inherits WHERE inhparent = 'jobs'::regclass ORDER BY 1`,
  );
  return rows.map((r) => r.p);
}

/** idempotency_key -> job_id of job_keys. */
export async function jobKeys(db: Queryable): Promise<Record<string, string>> {
  const { rows } = await db.query<{ k: string; id: string }>(
    'SELECT idempotency_key AS k, job_id::text AS id FROM job_keys ORDER BY 1',
  );
  return Object.fromEntries(rows.map((r) => [r.k, r.id]));
}

/** The exact totals (readCounters), for before/after comparisons. */
export async function totals(db: Queryable) {
  return (await readCounters(db)).totals;
}

export { fill, RUNBOOK_CANCEL, RUNBOOK_FORCE_RELEASE, runbookStatement } from '../helpers/runbook.ts';
