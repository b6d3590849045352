import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MigrationError } from './errors.ts';
import type { Db, Queryable } from './queryable.ts';

export interface MigrationFile {
  version: number;
  name: string;
  file: string;
  sql: string;
  checksum: string;
}

/**
 * A file of migrations/functions/: the reviewed source of one function or a few related ones,
 * `CREATE OR REPLACE`d after the versioned files whenever it changed (or a versioned file was
 * applied since), like Flyway's repeatable migrations.
 */
export interface FunctionFile {
  /** `functions/<name>.sql`, as recorded in schema_functions. */
  file: string;
  sql: string;
  checksum: string;
}

/** The versioned files in order, carrying the function files of `<dir>/functions` alongside. */
export interface Migrations extends Array<MigrationFile> {
  functions: FunctionFile[];
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: number;
  /** Function files (re)applied by this run, e.g. `functions/claim.sql`. */
  functions: string[];
}

export const DESTRUCTIVE_MARKER = '-- destructive: reviewed';
const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;
const FUNCTION_FILE_PATTERN = /^[a-z0-9_]+\.sql$/;
export const FUNCTIONS_DIR = 'functions';
/** The checked-in schema dump (tools/schema-dump.ts), relative to the migrations folder. */
export const SCHEMA_DUMP_FILE = 'dump/schema.sql';
/**
 * Written in a function file where the schema goes (`SET search_path TO :"schema", pg_temp`),
 * as psql's `:"var"`; the runner puts the quoted current schema there before running the file.
 */
export const SCHEMA_TOKEN = ':"schema"';

/**
 * The text of the statements that will run, in one pass from left to right: comments, string
 * literals (including E'…' with backslash escapes) and quoted identifiers removed, dollar-quoted
 * bodies removed too unless they belong to a DO block, whose body runs at migration time.
 * Handling each construct where it starts is what keeps an apostrophe in a comment from hiding
 * the statement after it.
 */
export function statementText(sql: string, keepStrings = false): string {
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    const next = sql[i + 1];
    if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end;
      out += ' ';
    } else if (c === '/' && next === '*') {
      let depth = 1;
      i += 2;
      while (i < sql.length && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else i++;
      }
      out += ' ';
    } else if (c === "'") {
      const start = i;
      const escapes = /[Ee]$/.test(out) && !/[A-Za-z0-9_][Ee]$/.test(out);
      i++;
      while (i < sql.length) {
        if (escapes && sql[i] === '\\') i += 2;
        else if (sql[i] === "'" && sql[i + 1] === "'") i += 2;
        else if (sql[i] === "'") break;
        else i++;
      }
      // Inside a DO block, strings are usually SQL run by EXECUTE: keep their text.
      out += keepStrings ? ` ${sql.slice(start + 1, i)} ` : "''";
      i++;
    } else if (c === '"') {
      const end = sql.indexOf('"', i + 1);
      i = end === -1 ? sql.length : end + 1;
      out += '"q"';
    } else if (c === '$' && !/[A-Za-z0-9_]$/.test(out)) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (!tag) {
        out += c;
        i++;
        continue;
      }
      const close = sql.indexOf(tag[0], i + tag[0].length);
      const body = sql.slice(i + tag[0].length, close === -1 ? sql.length : close);
      i = close === -1 ? sql.length : close + tag[0].length;
      out += /\bDO(\s+LANGUAGE\s+\w+)?\s*$/i.test(out) ? ` ${statementText(body, true)} ` : ' ';
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

const DESTRUCTIVE_PATTERNS: Array<[RegExp, string]> = [
  [/\bDROP\b/i, 'DROP'],
  [/\bTRUNCATE\b/i, 'TRUNCATE'],
  [/\bALTER\s+(?:COLUMN\s+)?(?:"q"|[A-Za-z_][\w$]*)\s+(?:SET\s+DATA\s+)?TYPE\b/i, 'column type change'],
  [/\bRENAME\b/i, 'RENAME'],
];

/** Names the destructive statements in a migration; empty when it is additive only. */
export function destructiveStatements(sql: string): string[] {
  const text = statementText(sql);
  return DESTRUCTIVE_PATTERNS.filter(([re]) => re.test(text)).map(([, what]) => what);
}

export function hasDestructiveMarker(sql: string): boolean {
  return sql.split('\n').some((line) => line.trim().toLowerCase() === DESTRUCTIVE_MARKER);
}

export function checksum(sql: string): string {
  return createHash('sha256').update(sql).digest('hex');
}

/**
 * Reads `NNNN_name.sql` files in order; refuses stray names, duplicate versions and unmarked
 * destructive files. The function files of `<dir>/functions` come along as `.functions` (a copy
 * made with map or filter carries the versioned files only).
 */
export function loadMigrations(dir: string): Migrations {
  return Object.assign(loadVersioned(dir), { functions: loadFunctionFiles(join(dir, FUNCTIONS_DIR)) });
}

function loadVersioned(dir: string): MigrationFile[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  const seen = new Map<number, string>();
  return files.map((file) => {
    const match = FILE_PATTERN.exec(file);
    if (!match) throw new MigrationError(`migration file ${file} does not match NNNN_name.sql`);
    const version = Number(match[1]);
    const previous = seen.get(version);
    if (previous)
      throw new MigrationError(`migration files ${previous} and ${file} share version ${version}`);
    seen.set(version, file);
    const sql = readFileSync(join(dir, file), 'utf8');
    const destructive = destructiveStatements(sql);
    if (destructive.length > 0 && !hasDestructiveMarker(sql)) {
      throw new MigrationError(
        `migration ${file} contains ${destructive.join(', ')} but no '${DESTRUCTIVE_MARKER}' marker; refusing to run`,
        { details: { file, destructive } },
      );
    }
    return { version, name: match[2]!, file, sql, checksum: checksum(sql) };
  });
}

/**
 * Reads `<name>.sql` function files in name order (none when the folder is absent). Each is
 * run again and again, so it may only `CREATE OR REPLACE`, never drop (a signature change or a
 * removal is a versioned migration), and every `SECURITY DEFINER` function in it fixes its
 * search_path to the schema: `SET search_path TO :"schema", pg_temp`.
 */
export function loadFunctionFiles(dir: string): FunctionFile[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((name) => {
      const file = `${FUNCTIONS_DIR}/${name}`;
      if (!FUNCTION_FILE_PATTERN.test(name))
        throw new MigrationError(`function file ${file} does not match name.sql`);
      const sql = readFileSync(join(dir, name), 'utf8');
      const problem = functionFileProblem(sql);
      if (problem)
        throw new MigrationError(`function file ${file} ${problem}; refusing to run`, { details: { file } });
      return { file, sql, checksum: checksum(sql) };
    });
}

/** Why a function file cannot be re-applied safely, or undefined. */
export function functionFileProblem(sql: string): string | undefined {
  const destructive = destructiveStatements(sql);
  if (destructive.length > 0) return `contains ${destructive.join(', ')} (write a versioned migration)`;
  const text = statementText(sql);
  if (/\bCREATE\s+(?!OR\s+REPLACE\b)(?:FUNCTION|PROCEDURE)\b/i.test(text))
    return 'has a CREATE FUNCTION without OR REPLACE';
  const definers = text.match(/\bSECURITY\s+DEFINER\b/gi)?.length ?? 0;
  const fixed = text.match(/\bSET\s+search_path\s*(?:TO|=)\s*:"q"\s*,\s*pg_temp\b/gi)?.length ?? 0;
  if (definers > fixed)
    return `has a SECURITY DEFINER function without SET search_path TO ${SCHEMA_TOKEN}, pg_temp`;
  return undefined;
}

interface AppliedRow {
  version: number;
  name: string;
  checksum: string;
}

/** The runner's bookkeeping: numbered files applied, and function files as last run. */
const CREATE_TABLES = `
  CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE IF NOT EXISTS schema_functions (
    file              text PRIMARY KEY,
    checksum          text NOT NULL,
    migration_version integer NOT NULL,
    applied_at        timestamptz NOT NULL DEFAULT now()
  )`;

const LOCK = `SELECT pg_advisory_xact_lock(hashtext('durable-task-engine:migrate:' || current_schema()))`;

/**
 * Serialises runners on a transaction-scoped advisory lock (per schema, so parallel test
 * schemas don't wait on each other); nothing outlives the transaction, so it is pooler-safe.
 */
async function lockAndReadApplied(tx: Queryable): Promise<Map<number, AppliedRow>> {
  await tx.query(LOCK);
  await tx.query(CREATE_TABLES);
  const { rows } = await tx.query<AppliedRow>('SELECT version, name, checksum FROM schema_migrations');
  return new Map(rows.map((r) => [r.version, r]));
}

function verifyApplied(files: readonly MigrationFile[], applied: Map<number, AppliedRow>): void {
  for (const file of files) {
    const row = applied.get(file.version);
    if (row && row.checksum !== file.checksum) {
      throw new MigrationError(
        `migration ${file.file} was changed after it was applied (checksum ${row.checksum.slice(0, 12)}… recorded, ${file.checksum.slice(0, 12)}… on disk); refusing to run`,
        { details: { file: file.file } },
      );
    }
  }
}

export interface MigrationStatus {
  file: MigrationFile;
  applied: boolean;
  checksumMatches: boolean;
}

/** What is applied, what is pending, and which applied files changed on disk. Changes nothing. */
export async function migrationStatus(db: Db, files: MigrationFile[]): Promise<MigrationStatus[]> {
  const { rows: exists } = await db.query<{ present: boolean }>(
    `SELECT to_regclass('schema_migrations') IS NOT NULL AS present`,
  );
  const applied = new Map<number, AppliedRow>();
  if (exists[0]?.present) {
    const { rows } = await db.query<AppliedRow>('SELECT version, name, checksum FROM schema_migrations');
    for (const r of rows) applied.set(r.version, r);
  }
  return files.map((file) => {
    const row = applied.get(file.version);
    return {
      file,
      applied: row !== undefined,
      checksumMatches: row === undefined || row.checksum === file.checksum,
    };
  });
}

interface FunctionRow {
  file: string;
  checksum: string;
  migration_version: number;
}

/**
 * Runs the function files whose checksum is not the one recorded in schema_functions, or that
 * were recorded before the latest versioned migration (which may have replaced a body): all in
 * one transaction under the runners' lock, with the quoted current schema put in place of
 * SCHEMA_TOKEN. Returns the files run.
 */
async function applyFunctions(db: Db, functions: readonly FunctionFile[]): Promise<string[]> {
  if (functions.length === 0) return [];
  return db.transaction(async (tx) => {
    const latest = Math.max(0, ...(await lockAndReadApplied(tx)).keys());
    const { rows: current } = await tx.query<{ schema: string | null }>(
      'SELECT quote_ident(current_schema()) AS schema',
    );
    const schema = current[0]?.schema;
    if (!schema)
      throw new MigrationError('no current schema (check search_path); refusing to apply functions');
    const { rows } = await tx.query<FunctionRow>(
      'SELECT file, checksum, migration_version FROM schema_functions',
    );
    const recorded = new Map(rows.map((r) => [r.file, r]));
    const run: string[] = [];
    for (const f of functions) {
      const row = recorded.get(f.file);
      if (row && row.checksum === f.checksum && row.migration_version === latest) continue;
      await tx.query(f.sql.replaceAll(SCHEMA_TOKEN, schema));
      await tx.query(
        `INSERT INTO schema_functions (file, checksum, migration_version) VALUES ($1, $2, $3)
         ON CONFLICT (file) DO UPDATE
           SET checksum = EXCLUDED.checksum, migration_version = EXCLUDED.migration_version, applied_at = now()`,
        [f.file, f.checksum, latest],
      );
      run.push(f.file);
    }
    return run;
  });
}

/**
 * Applies pending files in order, each in its own transaction together with its
 * schema_migrations row, then the function files that changed (applyFunctions). Two runners at
 * once: the second waits on the lock, then finds the file recorded and skips it, so each file
 * is applied exactly once.
 */
export async function migrate(
  db: Db,
  files: readonly MigrationFile[] & { functions?: readonly FunctionFile[] },
  log: (msg: string) => void = () => {},
): Promise<MigrateResult> {
  const result: MigrateResult = { applied: [], alreadyApplied: 0, functions: [] };
  for (const file of files) {
    const didApply = await db.transaction(async (tx) => {
      const applied = await lockAndReadApplied(tx);
      verifyApplied(files, applied);
      if (applied.has(file.version)) return false;
      await tx.query(file.sql);
      await tx.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
        file.version,
        file.name,
        file.checksum,
      ]);
      return true;
    });
    if (didApply) {
      result.applied.push(file.file);
      log(`applied ${file.file}`);
    } else {
      result.alreadyApplied++;
    }
  }
  result.functions = await applyFunctions(db, files.functions ?? []);
  for (const f of result.functions) log(`applied ${f}`);
  if (result.applied.length === 0 && result.functions.length === 0)
    log(`nothing to apply (${result.alreadyApplied} migration(s) already applied)`);
  return result;
}
