import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueue, getJob } from '../../functions/engine/index.ts';
import { migrationsDir } from '../../functions/platform/paths.ts';
import { checkMetrics, checkMigrations, REQUIRED_METRICS } from '../../tools/taskctl/checks.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { closedPort, oneLine, taskctl } from './taskctl.helpers.ts';

/** What the local engine's /metrics (or a Pushgateway) exposes, in Prometheus text format. */
function exposition(names: readonly string[]): string {
  return names
    .map(
      (n) =>
        `# HELP ${n} test\n# TYPE ${n} ${n.endsWith('_total') ? 'counter' : 'gauge'}\n${n}{queue="default"} 3\n`,
    )
    .join('');
}

async function serve(routes: Record<string, string>): Promise<{ server: Server; base: string }> {
  const server = createServer((req, res) => {
    const body = routes[req.url ?? ''];
    res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(body ?? 'not found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { server, base: `http://127.0.0.1:${port}` };
}

// Each test spawns the CLI a few times; under parallel suites on 2 cores a spawn has taken 10 s.
describe.runIf(await postgresAvailable())(
  'taskctl checks and error contract on PostgreSQL',
  { timeout: 180_000 },
  () => {
    let t: TestSchema;
    let http: { server: Server; base: string };
    const cli = (...args: string[]) => taskctl(t.url, args);

    beforeAll(async () => {
      t = await createTestSchema('taskctl_checks');
      http = await serve({
        '/metrics': exposition(REQUIRED_METRICS),
        '/partial/metrics': exposition(REQUIRED_METRICS.filter((n) => n !== 'phase6_task_failed_total')),
        '/-/healthy': 'OK',
      });
    });
    afterAll(async () => {
      await new Promise((r) => http?.server.close(r));
      await t?.drop();
    });

    it('preflight passes on a healthy database with every required metric, and fails on a tampered applied migration', async () => {
      // Act: healthy
      const healthy = await cli('preflight', '--metrics-url', `${http.base}/metrics`);
      // Assess
      expect(healthy.code).toBe(0);
      expect(healthy.json.ok).toBe(true);
      expect(healthy.json.checks.map((c: { name: string }) => c.name)).toEqual([
        'database',
        'migrations.applied',
        'migrations.unchanged',
        'migrations.destructive',
        'metrics',
        'runbook',
      ]);
      expect(healthy.json.checks.every((c: { ok: boolean }) => c.ok)).toBe(true);
      // Prepare: someone edited an applied migration (its recorded checksum no longer matches).
      await t.db.query(`UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 1`);
      try {
        // Act
        const tampered = await cli('preflight', '--metrics-url', `${http.base}/metrics`);
        // Assess
        expect(tampered.code).toBe(1);
        expect(tampered.json.ok).toBe(false);
        const failed = tampered.json.checks.filter((c: { ok: boolean }) => !c.ok);
        expect(failed).toEqual([
          expect.objectContaining({
            name: 'migrations.unchanged',
            detail: expect.stringMatching(/0001_jobs\.sql changed/),
          }),
        ]);
        expect(oneLine(tampered.stderr)).toMatch(/preflight failed: migrations\.unchanged/);
      } finally {
        await t.db.query(`UPDATE schema_migrations m SET checksum = $1 WHERE version = 1`, [
          (await import('../../functions/engine/migrator.ts')).loadMigrations(migrationsDir())[0]!.checksum,
        ]);
      }
    });

    it('the metrics check names each required metric missing at the URL, and an unreachable URL', async () => {
      const partial = await checkMetrics(`${http.base}/partial/metrics`);
      const down = await checkMetrics(`http://127.0.0.1:${await closedPort()}/metrics`);
      expect(partial).toMatchObject({
        ok: false,
        detail: expect.stringMatching(/missing .*: phase6_task_failed_total$/),
      });
      expect(down).toMatchObject({ ok: false, detail: expect.stringMatching(/failed/) });
    });

    it('the migration checks flag a pending destructive file without its marker, and accept one with it', async () => {
      // Prepare: the repo's migrations plus two pending files.
      const dir = mkdtempSync(join(tmpdir(), 'taskctl-migrations-'));
      try {
        cpSync(migrationsDir(), dir, { recursive: true });
        writeFileSync(
          join(dir, '0098_reviewed.sql'),
          '-- destructive: reviewed\nDROP INDEX IF EXISTS nothing_here;\n',
        );
        writeFileSync(join(dir, '0099_unreviewed.sql'), 'ALTER TABLE jobs DROP COLUMN result;\n');
        // Act
        const results = await checkMigrations(t.db, dir);
        // Assess
        const byName = Object.fromEntries(results.map((r) => [r.name, r]));
        expect(byName['migrations.applied']).toMatchObject({
          ok: false,
          detail: expect.stringMatching(/2 pending/),
        });
        expect(byName['migrations.unchanged']?.ok).toBe(true);
        expect(byName['migrations.destructive']).toMatchObject({
          ok: false,
          detail: expect.stringMatching(/^0099_unreviewed\.sql contains DROP without/),
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('health reports the database, the schema and the Pushgateway', async () => {
      const ok = await taskctl(t.url, ['health'], { PUSHGATEWAY_URL: http.base });
      expect(ok.code).toBe(0);
      expect(ok.json.checks.map((c: { name: string; ok: boolean }) => [c.name, c.ok])).toEqual([
        ['database', true],
        ['migrations.applied', true],
        ['migrations.unchanged', true],
        ['pushgateway', true],
      ]);
    });

    it('bad ids, durations, JSON and options exit 2, unknown ids exit 3, each with one line and no stack', async () => {
      const { job } = await enqueue(t.db, { type: 'example.echo' });
      // Two at a time: each child is a tsx start (~1 s of CPU), and this box has 2 cores.
      const [badId, badDuration] = await Promise.all([
        cli('jobs', 'show', 'abc'),
        cli('release-stuck', '--older-than', 'ten minutes'),
      ]);
      const [badJson, noReason] = await Promise.all([
        cli('enqueue', 'example.echo', '--payload', '{"unterminated'),
        cli('cancel', job.id),
      ]);
      const unknown = await cli('cancel', '987654321', '--reason', 'gone');
      const line = (r: { code: number; stderr: string }) => ({ code: r.code, line: oneLine(r.stderr) });
      expect(line(badId)).toEqual({
        code: 2,
        line: 'taskctl: invalid job id "abc": expected a positive integer',
      });
      expect(line(badDuration)).toMatchObject({
        code: 2,
        line: expect.stringMatching(/invalid --older-than "ten minutes"/),
      });
      expect(line(badJson)).toMatchObject({
        code: 2,
        line: expect.stringMatching(/^taskctl: invalid --payload JSON/),
      });
      expect(line(noReason)).toMatchObject({
        code: 2,
        line: expect.stringMatching(/required option '--reason <text>'/),
      });
      expect(line(unknown)).toEqual({
        code: 3,
        line: 'taskctl: job(s) not found: 987654321; nothing changed',
      });
      expect(await getJob(t.db, job.id)).toMatchObject({ status: 'queued', last_error: null });
    });

    it('an unreachable database exits 4 with one line, for a command and for preflight', async () => {
      const url = `postgres://root@127.0.0.1:${await closedPort()}/test`;
      const [status, preflight] = await Promise.all([
        taskctl(url, ['status']),
        taskctl(url, ['preflight', '--metrics-url', `${http.base}/metrics`]),
      ]);
      expect(status.code).toBe(4);
      expect(oneLine(status.stderr)).toMatch(/^taskctl: database unavailable: .*ECONNREFUSED/);
      expect(preflight.code).toBe(4);
      expect(preflight.json.checks.find((c: { name: string }) => c.name === 'database')).toMatchObject({
        ok: false,
      });
    });

    it('--help on a command exits 0 and shows an example; no DATABASE_URL is a usage error', async () => {
      const [help, noUrl] = await Promise.all([
        taskctl(t.url, ['cancel', '--help']),
        taskctl('', ['status'], { DATABASE_URL: '' }),
      ]);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/Examples:\n {2}\$ taskctl cancel \d+ --reason/);
      expect(noUrl.code).toBe(2);
      expect(oneLine(noUrl.stderr)).toMatch(/DATABASE_URL \(or DATABASE_DSN\) is not set/);
    });
  },
);
