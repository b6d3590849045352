import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadMigrations, MigrationError, migrate } from '../../functions/engine/index.ts';
import { createDb, type PgDb } from '../../functions/platform/db.ts';
import { migrationsDir } from '../../functions/platform/paths.ts';
import { DATABASE_URL, postgresAvailable } from '../helpers/pg.ts';

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** An empty schema (createTestSchema would migrate it), with as many pools on it as asked. */
interface BareSchema {
  name: string;
  url: string;
  connect(): PgDb;
}

const created: Array<{ name: string; pools: PgDb[] }> = [];
const tempDirs: string[] = [];

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: DATABASE_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function bareSchema(): Promise<BareSchema> {
  const name = `mig_${randomBytes(5).toString('hex')}`;
  await admin((c) => c.query(`CREATE SCHEMA ${name}`));
  const entry = { name, pools: [] as PgDb[] };
  created.push(entry);
  const url = new URL(DATABASE_URL);
  url.searchParams.set('options', `-c search_path=${name}`);
  return {
    name,
    url: url.toString(),
    connect() {
      const db = createDb({ connectionString: DATABASE_URL, searchPath: name, max: 1 });
      entry.pools.push(db);
      return db;
    },
  };
}

function tempMigrations(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'dte-mig-'));
  tempDirs.push(dir);
  for (const [file, sql] of Object.entries(files)) writeFileSync(join(dir, file), sql);
  return dir;
}

async function appliedRows(db: PgDb): Promise<Array<{ version: number; name: string }>> {
  const { rows } = await db.query<{ version: number; name: string }>(
    'SELECT version, name FROM schema_migrations ORDER BY version',
  );
  return rows;
}

async function tableExists(db: PgDb, table: string): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [table]);
  return rows[0]!.ok;
}

const realFiles = readdirSync(migrationsDir())
  .filter((f) => f.endsWith('.sql'))
  .sort();
const realFunctions = readdirSync(join(migrationsDir(), 'functions'))
  .filter((f) => f.endsWith('.sql'))
  .sort()
  .map((f) => `functions/${f}`);

describe.runIf(await postgresAvailable())('migration runner on PostgreSQL', () => {
  afterEach(async () => {
    for (const { pools } of created) await Promise.all(pools.splice(0).map((p) => p.end().catch(() => {})));
  });
  afterAll(async () => {
    for (const { name } of created) await admin((c) => c.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`));
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });

  it('applies every file once; a second run applies nothing and reports them already applied', async () => {
    // Prepare
    const schema = await bareSchema();
    const db = schema.connect();
    const files = loadMigrations(migrationsDir());
    const log: string[] = [];
    // Act
    const first = await migrate(db, files);
    const second = await migrate(db, files, (line) => log.push(line));
    // Assess
    expect(first).toEqual({ applied: realFiles, alreadyApplied: 0, functions: realFunctions });
    expect(second).toEqual({ applied: [], alreadyApplied: realFiles.length, functions: [] });
    expect(log.join('\n')).toMatch(/nothing to apply/);
    expect((await appliedRows(db)).map((r) => r.version)).toEqual(files.map((f) => f.version));
    expect(await tableExists(db, 'jobs')).toBe(true);
  });

  it('five runners started at once on one schema apply each file exactly once, without error', async () => {
    // Prepare: the real files, plus one that fails if run twice (a plain INSERT into a unique column)
    const dir = mkdtempSync(join(tmpdir(), 'dte-mig-'));
    tempDirs.push(dir);
    for (const f of realFiles) copyFileSync(join(migrationsDir(), f), join(dir, f));
    writeFileSync(
      join(dir, '9000_once.sql'),
      'CREATE TABLE once_marker (n int PRIMARY KEY);\nINSERT INTO once_marker VALUES (1);\n',
    );
    const schema = await bareSchema();
    const files = loadMigrations(dir);
    // Act
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => migrate(schema.connect(), files)),
    );
    // Assess
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(failures.map((f) => String(f.reason))).toEqual([]);
    const applied = results.flatMap(
      (r) => (r as PromiseFulfilledResult<{ applied: string[] }>).value.applied,
    );
    expect(applied.sort()).toEqual([...realFiles, '9000_once.sql']);
    const db = schema.connect();
    const { rows } = await db.query<{ version: number; n: string }>(
      'SELECT version, count(*) AS n FROM schema_migrations GROUP BY version ORDER BY version',
    );
    expect(rows.map((r) => r.version)).toEqual(files.map((f) => f.version));
    expect(rows.every((r) => r.n === '1')).toBe(true);
    const { rows: marker } = await db.query<{ n: string }>('SELECT count(*) AS n FROM once_marker');
    expect(marker[0]!.n).toBe('1');
  });

  it('five runners at once run each function file exactly once, after every versioned file', async () => {
    // Prepare
    const schema = await bareSchema();
    const files = loadMigrations(migrationsDir());
    // Act
    const results = await Promise.all(Array.from({ length: 5 }, () => migrate(schema.connect(), files)));
    // Assess
    expect(results.flatMap((r) => r.functions).sort()).toEqual(realFunctions);
    const { rows } = await schema
      .connect()
      .query<{ file: string; migration_version: number }>(
        'SELECT file, migration_version FROM schema_functions ORDER BY file',
      );
    expect(rows).toEqual(realFunctions.map((file) => ({ file, migration_version: files.at(-1)!.version })));
  });

  /** The repo's migrations with their function files, in a folder a test may edit. */
  function copyOfMigrations(): string {
    const dir = mkdtempSync(join(tmpdir(), 'dte-mig-'));
    tempDirs.push(dir);
    cpSync(migrationsDir(), dir, { recursive: true });
    return dir;
  }

  async function cancelFunction(db: PgDb) {
    const { rows } = await db.query<{
      def: string;
      definer: boolean;
      config: string[];
      api: boolean;
      anyone: boolean;
    }>(
      `SELECT pg_get_functiondef(p.oid) AS def, p.prosecdef AS definer, p.proconfig AS config,
              has_function_privilege('dte_api', p.oid, 'EXECUTE') AS api,
              EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0) AS anyone
         FROM pg_proc p WHERE p.oid = 'jobs_cancel(bigint, text, text, boolean, text)'::regprocedure`,
    );
    return rows[0]!;
  }

  it('runs a changed function file again, alone, keeping SECURITY DEFINER, the fixed search_path and the grants', async () => {
    // Prepare
    const dir = copyOfMigrations();
    const schema = await bareSchema();
    const db = schema.connect();
    await migrate(db, loadMigrations(dir));
    const file = join(dir, 'functions', 'cancel.sql');
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace('#variable_conflict error', '#variable_conflict error\n-- edited'),
    );
    // Act
    const result = await migrate(db, loadMigrations(dir));
    const again = await migrate(db, loadMigrations(dir));
    // Assess
    expect(result).toEqual({
      applied: [],
      alreadyApplied: realFiles.length,
      functions: ['functions/cancel.sql'],
    });
    expect(again.functions).toEqual([]);
    const fn = await cancelFunction(db);
    expect(fn.def).toContain('-- edited');
    expect(fn).toMatchObject({ definer: true, api: true, anyone: false });
    expect(fn.config).toContain(`search_path=${schema.name}, pg_temp`);
  });

  it('runs the function files again after a versioned file that replaced a body: the file wins', async () => {
    // Prepare: a later versioned migration that redefines jobs_cancel as an older one did.
    const dir = copyOfMigrations();
    const schema = await bareSchema();
    const db = schema.connect();
    await migrate(db, loadMigrations(dir));
    writeFileSync(
      join(dir, '9000_redefine.sql'),
      `CREATE OR REPLACE FUNCTION jobs_cancel(p_id bigint, p_reason text, p_actor text, p_creator_only boolean, p_caller text)
         RETURNS SETOF jobs LANGUAGE plpgsql AS $$ BEGIN RETURN; END $$;\n`,
    );
    // Act
    const result = await migrate(db, loadMigrations(dir));
    // Assess
    expect(result.applied).toEqual(['9000_redefine.sql']);
    expect(result.functions).toEqual(realFunctions);
    const fn = await cancelFunction(db);
    expect(fn.def).toContain('DELETE FROM jobs_live');
    expect(fn).toMatchObject({ definer: true, api: true, anyone: false });
    expect(fn.config).toContain(`search_path=${schema.name}, pg_temp`);
  });

  it('refuses to run when an applied file changed, naming the file, and applies nothing after it', async () => {
    // Prepare
    const dir = tempMigrations({ '0001_first.sql': 'CREATE TABLE first_t (id int);\n' });
    const schema = await bareSchema();
    const db = schema.connect();
    await migrate(db, loadMigrations(dir));
    writeFileSync(join(dir, '0001_first.sql'), 'CREATE TABLE first_t (id bigint);\n');
    writeFileSync(join(dir, '0002_second.sql'), 'CREATE TABLE second_t (id int);\n');
    // Act
    const attempt = migrate(db, loadMigrations(dir));
    // Assess
    await expect(attempt).rejects.toBeInstanceOf(MigrationError);
    await expect(attempt).rejects.toThrow(/0001_first\.sql/);
    await expect(attempt).rejects.toThrow(/changed after it was applied/);
    expect((await appliedRows(db)).map((r) => r.name)).toEqual(['first']);
    expect(await tableExists(db, 'second_t')).toBe(false);
  });

  const destructive: Record<string, string> = {
    'DROP TABLE': 'DROP TABLE victim;',
    TRUNCATE: 'TRUNCATE victim;',
    'DROP COLUMN': 'ALTER TABLE victim DROP COLUMN note;',
    'ALTER COLUMN TYPE': 'ALTER TABLE victim ALTER COLUMN id TYPE bigint;',
    'ALTER COLUMN SET DATA TYPE': 'ALTER TABLE victim ALTER COLUMN id SET DATA TYPE bigint;',
  };
  for (const [what, statement] of Object.entries(destructive)) {
    it(`refuses a file with ${what} unless it carries the reviewed marker, and applies it with the marker`, async () => {
      // Prepare
      const base = 'CREATE TABLE victim (id int, note text);\nINSERT INTO victim VALUES (1, $$x$$);\n';
      const unmarked = tempMigrations({ '0001_base.sql': base, '0002_change.sql': `${statement}\n` });
      const marked = tempMigrations({
        '0001_base.sql': base,
        '0002_change.sql': `-- destructive: reviewed\n-- ${what}: approved in review\n${statement}\n`,
      });
      const schema = await bareSchema();
      const db = schema.connect();
      // Act + Assess: refused before anything runs, with a message naming the file
      expect(() => loadMigrations(unmarked)).toThrow(MigrationError);
      expect(() => loadMigrations(unmarked)).toThrow(/0002_change\.sql/);
      expect(() => loadMigrations(unmarked)).toThrow(/destructive: reviewed/);
      expect(await tableExists(db, 'schema_migrations')).toBe(false);
      // With the marker it loads and runs.
      const result = await migrate(db, loadMigrations(marked));
      expect(result.applied).toEqual(['0001_base.sql', '0002_change.sql']);
    });
  }

  it('refuses badly named files before applying anything', async () => {
    const schema = await bareSchema();
    const db = schema.connect();
    for (const bad of ['1_short.sql', '0001-dash.sql', '0001_Upper.sql', '0001_.sql', '00001_five.sql']) {
      const dir = tempMigrations({ '0001_ok.sql': 'CREATE TABLE ok_t (id int);\n', [bad]: 'SELECT 1;\n' });
      expect(() => loadMigrations(dir), bad).toThrow(MigrationError);
      expect(() => loadMigrations(dir), bad).toThrow(bad);
    }
    const dupes = tempMigrations({ '0001_a.sql': 'SELECT 1;\n', '0001_b.sql': 'SELECT 2;\n' });
    expect(() => loadMigrations(dupes)).toThrow(/0001_a\.sql and 0001_b\.sql share version 1/);
    expect(await tableExists(db, 'schema_migrations')).toBe(false);
  });

  it('a failing file rolls back with its record, leaving earlier files applied', async () => {
    // Prepare
    const dir = tempMigrations({
      '0001_good.sql': 'CREATE TABLE good_t (id int);\n',
      '0002_bad.sql': 'CREATE TABLE half_t (id int);\nSELECT no_such_column FROM good_t;\n',
    });
    const schema = await bareSchema();
    const db = schema.connect();
    // Act
    await expect(migrate(db, loadMigrations(dir))).rejects.toThrow(/no_such_column/);
    // Assess
    expect((await appliedRows(db)).map((r) => r.name)).toEqual(['good']);
    expect(await tableExists(db, 'half_t')).toBe(false);
  });

  it('npm run migrate on an empty schema applies every file, and a second run says nothing to apply', async () => {
    // Prepare
    const schema = await bareSchema();
    const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: schema.url, LOG_LEVEL: 'error' };
    delete env.DATABASE_DSN;
    delete env.MIGRATIONS_DIR;
    // Act
    const first = await run('npm', ['run', '--silent', 'migrate'], { cwd: repoRoot, env, timeout: 60_000 });
    const second = await run('npm', ['run', '--silent', 'migrate'], { cwd: repoRoot, env, timeout: 60_000 });
    // Assess
    for (const f of realFiles) expect(first.stdout).toContain(`applied ${f}`);
    expect(first.stdout).toContain(`${realFiles.length} applied, 0 already applied`);
    expect(second.stdout).toMatch(/nothing to apply/);
    expect(second.stdout).toContain(`0 applied, ${realFiles.length} already applied`);
    const db = schema.connect();
    expect(await appliedRows(db)).toHaveLength(realFiles.length);
  });
});
