import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  checksum,
  DatabaseUnavailableError,
  type Db,
  destructiveStatements,
  hasDestructiveMarker,
} from '../../functions/engine/index.ts';
import { isAuthFailure } from '../../functions/platform/db.ts';

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

/** The names the release checklist requires (docs/RELEASE-CHECKLIST.md, Go/No-Go). */
export const REQUIRED_METRICS = [
  'phase6_task_submitted_total',
  'phase6_task_running',
  'phase6_task_completed_total',
  'phase6_task_failed_total',
  'phase6_task_recovered_total',
] as const;

/** Each scenario docs/RUNBOOK.md must cover, matched case-insensitively in its headings. */
export const RUNBOOK_SECTIONS = [
  'worker crash',
  'stuck job',
  'postgresql unavailable',
  'contention',
  'cancel',
  'drain and resume',
  'rollback',
] as const;

const HTTP_TIMEOUT_MS = 3000;

function message(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ');
}

export async function checkDatabase(db: Db): Promise<CheckResult & { unreachable: boolean }> {
  try {
    const { rows } = await db.query<{ v: string; schema: string }>(
      `SELECT current_setting('server_version') AS v, current_schema() AS schema`,
    );
    return {
      name: 'database',
      ok: true,
      unreachable: false,
      detail: `reachable (PostgreSQL ${rows[0]?.v}, schema ${rows[0]?.schema})`,
    };
  } catch (err) {
    const unreachable = err instanceof DatabaseUnavailableError || isAuthFailure(err);
    return { name: 'database', ok: false, unreachable, detail: message(err) };
  }
}

interface FileOnDisk {
  version: number;
  file: string;
  checksum: string;
  destructive: string[];
  marked: boolean;
}

/** Reads migrations/ without the runner's refusal, so an unmarked destructive file is reported, not thrown. */
function scanMigrations(dir: string): FileOnDisk[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file) => {
      const sql = readFileSync(join(dir, file), 'utf8');
      return {
        version: Number(file.slice(0, 4)),
        file,
        checksum: checksum(sql),
        destructive: destructiveStatements(sql),
        marked: hasDestructiveMarker(sql),
      };
    });
}

async function appliedMigrations(db: Db): Promise<Map<number, { name: string; checksum: string }>> {
  const { rows: present } = await db.query<{ ok: boolean }>(
    `SELECT to_regclass('schema_migrations') IS NOT NULL AS ok`,
  );
  const applied = new Map<number, { name: string; checksum: string }>();
  if (!present[0]?.ok) return applied;
  const { rows } = await db.query<{ version: number; name: string; checksum: string }>(
    'SELECT version, name, checksum FROM schema_migrations ORDER BY version',
  );
  for (const r of rows) applied.set(r.version, { name: r.name, checksum: r.checksum });
  return applied;
}

/**
 * Three checks from one read: every file applied, every applied file unchanged on disk (and
 * none applied that is missing from disk), and no pending destructive file without its marker.
 */
export async function checkMigrations(db: Db | null, dir: string): Promise<CheckResult[]> {
  let files: FileOnDisk[];
  try {
    files = scanMigrations(dir);
  } catch (err) {
    const detail = `cannot read ${dir}: ${message(err)}`;
    return ['migrations.applied', 'migrations.unchanged', 'migrations.destructive'].map((name) => ({
      name,
      ok: false,
      detail,
    }));
  }
  let applied: Map<number, { name: string; checksum: string }> | null = null;
  let dbError = 'database unreachable';
  if (db) {
    try {
      applied = await appliedMigrations(db);
    } catch (err) {
      dbError = message(err);
    }
  }
  const results: CheckResult[] = [];
  if (applied === null) {
    results.push({ name: 'migrations.applied', ok: false, detail: `not checked: ${dbError}` });
    results.push({ name: 'migrations.unchanged', ok: false, detail: `not checked: ${dbError}` });
  } else {
    const pending = files.filter((f) => !applied.has(f.version));
    results.push({
      name: 'migrations.applied',
      ok: pending.length === 0,
      detail:
        pending.length === 0
          ? `all ${files.length} applied`
          : `${pending.length} pending: ${pending.map((f) => f.file).join(', ')} (run: taskctl migrate)`,
    });
    const changed = files.filter(
      (f) => applied.get(f.version) && applied.get(f.version)!.checksum !== f.checksum,
    );
    const onDisk = new Set(files.map((f) => f.version));
    const vanished = [...applied.entries()].filter(([v]) => !onDisk.has(v));
    const problems = [
      ...changed.map((f) => `${f.file} changed after it was applied (checksum differs)`),
      ...vanished.map(
        ([v, r]) => `${String(v).padStart(4, '0')}_${r.name}.sql applied but missing from ${dir}`,
      ),
    ];
    results.push({
      name: 'migrations.unchanged',
      ok: problems.length === 0,
      detail: problems.length === 0 ? 'applied checksums match the files' : problems.join('; '),
    });
  }
  const candidates = applied === null ? files : files.filter((f) => !applied.has(f.version));
  const unmarked = candidates.filter((f) => f.destructive.length > 0 && !f.marked);
  const marked = candidates.filter((f) => f.destructive.length > 0 && f.marked);
  results.push({
    name: 'migrations.destructive',
    ok: unmarked.length === 0,
    detail:
      unmarked.length > 0
        ? unmarked
            .map((f) => `${f.file} contains ${f.destructive.join(', ')} without '-- destructive: reviewed'`)
            .join('; ')
        : marked.length > 0
          ? `pending destructive, marked reviewed: ${marked.map((f) => f.file).join(', ')} (take a backup first)`
          : 'no pending destructive migration',
  });
  return results;
}

async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
  return { status: res.status, body: await res.text() };
}

/** Sample names in a Prometheus text exposition (not only # TYPE lines: a series must exist). */
export function exposedMetricNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+\S+/.exec(line);
    if (m) names.add(m[1]!);
  }
  return names;
}

export async function checkMetrics(url: string): Promise<CheckResult> {
  try {
    const { status, body } = await httpGet(url);
    if (status !== 200) return { name: 'metrics', ok: false, detail: `GET ${url} answered ${status}` };
    const names = exposedMetricNames(body);
    const missing = REQUIRED_METRICS.filter((n) => !names.has(n));
    return {
      name: 'metrics',
      ok: missing.length === 0,
      detail:
        missing.length === 0
          ? `all ${REQUIRED_METRICS.length} required metrics exposed at ${url}`
          : `missing at ${url}: ${missing.join(', ')}`,
    };
  } catch (err) {
    return { name: 'metrics', ok: false, detail: `GET ${url} failed: ${message(err)}` };
  }
}

export async function checkPushgateway(base: string): Promise<CheckResult> {
  const url = new URL('-/healthy', base.endsWith('/') ? base : `${base}/`).toString();
  try {
    const { status } = await httpGet(url);
    return { name: 'pushgateway', ok: status === 200, detail: `GET ${url} answered ${status}` };
  } catch (err) {
    return { name: 'pushgateway', ok: false, detail: `GET ${url} failed: ${message(err)}` };
  }
}

export function checkRunbook(path: string): CheckResult {
  if (!existsSync(path)) return { name: 'runbook', ok: false, detail: `${path} not found` };
  const headings = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('#'))
    .map((l) => l.toLowerCase());
  const missing = RUNBOOK_SECTIONS.filter((s) => !headings.some((h) => h.includes(s)));
  return {
    name: 'runbook',
    ok: missing.length === 0,
    detail:
      missing.length === 0
        ? `${path} present, covers all ${RUNBOOK_SECTIONS.length} scenarios`
        : `${path} has no section for: ${missing.join(', ')}`,
  };
}
