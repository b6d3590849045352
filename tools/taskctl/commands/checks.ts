import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { migrationsDir } from '../../../functions/platform/paths.ts';
import {
  type CheckResult,
  checkDatabase,
  checkMetrics,
  checkMigrations,
  checkPushgateway,
  checkRunbook,
} from '../checks.ts';
import { database, emit, readCommand } from '../context.ts';
import { CheckFailedError, EXIT } from '../errors.ts';
import { examples, table } from '../render.ts';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Prints every check; exit 4 when the database is unreachable, 1 when any other check failed. */
function conclude(cmd: Command, what: string, checks: CheckResult[], dbUnreachable: boolean): void {
  const ok = checks.every((c) => c.ok);
  emit(cmd, { ok, checks }, () =>
    [
      table(
        ['check', 'result', 'why'],
        checks.map((c) => [c.name, c.ok ? 'PASS' : 'FAIL', c.detail]),
      ),
      ok ? `${what}: GO (all ${checks.length} checks pass)` : `${what}: NO-GO`,
    ].join('\n'),
  );
  if (!ok) {
    const failed = checks.filter((c) => !c.ok).map((c) => c.name);
    throw new CheckFailedError(
      `${what} failed: ${failed.join(', ')}`,
      dbUnreachable ? EXIT.databaseUnreachable : EXIT.checkFailed,
    );
  }
}

function defaultMetricsUrl(): string {
  if (process.env.METRICS_URL) return process.env.METRICS_URL;
  if (process.env.PUSHGATEWAY_URL)
    return new URL('metrics', `${process.env.PUSHGATEWAY_URL.replace(/\/$/, '')}/`).toString();
  return `http://127.0.0.1:${process.env.PORT ?? 3000}/metrics`;
}

export function registerChecks(program: Command): void {
  readCommand(
    program,
    {
      name: 'health',
      description:
        'database reachable, schema current (all migrations applied, checksums match), Pushgateway reachable when PUSHGATEWAY_URL is set',
      examples: ['taskctl health', 'taskctl health --json && echo healthy'],
    },
    async (db, cmd) => {
      const dbCheck = await checkDatabase(db);
      const migrations = await checkMigrations(dbCheck.ok ? db : null, migrationsDir());
      const checks: CheckResult[] = [
        { name: dbCheck.name, ok: dbCheck.ok, detail: dbCheck.detail },
        ...migrations.filter((m) => m.name !== 'migrations.destructive'),
      ];
      if (process.env.PUSHGATEWAY_URL) checks.push(await checkPushgateway(process.env.PUSHGATEWAY_URL));
      conclude(cmd, 'health', checks, dbCheck.unreachable);
    },
  );

  program
    .command('preflight')
    .description(
      'the release Go/No-Go as checks: database reachable, migrations all applied and unchanged, no pending destructive migration without its marker, required metrics exposed, runbook present. Exit 0 only when all pass',
    )
    .option(
      '--metrics-url <url>',
      'Prometheus text to check (default: $METRICS_URL, else $PUSHGATEWAY_URL/metrics, else the local engine at 127.0.0.1:$PORT/metrics)',
    )
    .option('--runbook <path>', 'the runbook to check', join(REPO_ROOT, 'docs', 'RUNBOOK.md'))
    .addHelpText(
      'after',
      examples(
        'taskctl preflight --metrics-url http://127.0.0.1:3000/metrics',
        'DATABASE_URL=$STAGING_URL taskctl preflight --metrics-url http://pushgateway.internal:9091/metrics --json',
      ),
    )
    .action(async (o: { metricsUrl?: string; runbook: string }, cmd: Command) => {
      const db = database();
      const dbCheck = await checkDatabase(db);
      const [migrations, metrics] = await Promise.all([
        checkMigrations(dbCheck.ok ? db : null, migrationsDir()),
        checkMetrics(o.metricsUrl ?? defaultMetricsUrl()),
      ]);
      const checks: CheckResult[] = [
        { name: dbCheck.name, ok: dbCheck.ok, detail: dbCheck.detail },
        ...migrations,
        metrics,
        checkRunbook(resolve(o.runbook)),
      ];
      conclude(cmd, 'preflight', checks, dbCheck.unreachable);
    });
}
