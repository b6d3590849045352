/**
 * The previous release, side by side with today's code (issues 19 and 21: "≤ 0.6× today's
 * shipped figure", "no regression in the same run"): its functions/, migrations/ and
 * package.json extracted from git at RELEASE_REF into a temporary directory (node_modules a
 * symlink to the project's), its own migrator on a fresh database, its own API handler for the
 * enqueue and its own consumer handler drained by the same harness as today's (lib/handlers.ts),
 * at its shipped defaults.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cpuMeter } from '../lib/cpu.ts';
import type { MakeApi, MakeConsumer } from '../lib/handlers.ts';
import { analyze, handlers, ROOT, withDatabase } from '../lib/harness.ts';
import { RELEASE_REF } from '../lib/options.ts';
import { notes, recordDrain } from '../lib/results.ts';
import { percentile } from '../lib/stats.ts';
import { walMeter } from '../lib/wal.ts';
import type { System, SystemRun } from './types.ts';

/** What the bench uses of a release's code (the shapes of today's; a release that differs fails loudly). */
interface Release {
  ref: string;
  commit: string;
  dir: string;
  consumer: MakeConsumer;
  api: MakeApi;
  migrate(url: string): Promise<void>;
}

let loaded: Promise<Release> | undefined;
/** The resolved release of this run (for the results file), once loaded. */
export const releaseInfo: { ref: string; commit?: string } = { ref: RELEASE_REF };

async function extract(ref: string): Promise<Release> {
  const git = (...args: string[]) => execFileSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' });
  const commit = git('rev-parse', '--verify', `${ref}^{commit}`).trim();
  const dir = mkdtempSync(join(tmpdir(), `bench-release-${commit.slice(0, 7)}-`));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const archive = execFileSync(
    'git',
    ['-C', ROOT, 'archive', commit, 'functions', 'migrations', 'package.json'],
    {
      maxBuffer: 256 * 1024 * 1024,
    },
  );
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const load = async <T>(file: string) => (await import(pathToFileURL(join(dir, file)).href)) as T;
  const consumer = await load<{ createHandler: MakeConsumer }>('functions/consumer.ts');
  const api = await load<{ createHandler: MakeApi }>('functions/api.ts');
  const engine = await load<{
    loadMigrations(dir: string): unknown;
    migrate(db: unknown, migrations: unknown): Promise<unknown>;
  }>('functions/engine/index.ts');
  const platformDb = await load<{
    createDb(o: { connectionString: string; max: number; applicationName: string }): { end(): Promise<void> };
  }>('functions/platform/db.ts');
  releaseInfo.commit = commit;
  notes.push(`previous-release: ${ref} = ${commit}, extracted to ${dir}`);
  return {
    ref,
    commit,
    dir,
    consumer: consumer.createHandler,
    api: api.createHandler,
    migrate: async (url) => {
      const db = platformDb.createDb({ connectionString: url, max: 1, applicationName: 'bench-migrate' });
      try {
        await engine.migrate(db, engine.loadMigrations(join(dir, 'migrations')));
      } finally {
        await db.end();
      }
    },
  };
}

export const release = (): Promise<Release> => {
  loaded ??= extract(RELEASE_REF);
  return loaded;
};

/** The previous release's consumer handler at its shipped defaults, as `consumer` is today's. */
export const releaseConsumer: System = {
  id: 'release-consumer',
  run: ({ round, jobs, workers, scenario }: SystemRun) =>
    withDatabase(`release_${round}`, async (db) => {
      const r = await release();
      const h = await handlers();
      await r.migrate(db.url);
      await h.apiBatchEnqueue(db.url, jobs, 500, r.api);
      await analyze(db.url);
      const wal = await walMeter(db.url);
      const cpu = cpuMeter(db.name);
      const d = await h.consumerDrain(db.url, jobs, workers, {}, cpu.stop, { make: r.consumer });
      await wal.stop();
      recordDrain(
        'release-consumer',
        { round, workers, scenario },
        {
          jobs: d.done,
          seconds: d.seconds,
          extra: {
            ref: r.ref,
            commit: r.commit,
            invocations: d.invocations,
            ...d.summaries,
            claimP99Ms: percentile(d.claimMs, 99),
            ...cpu.perJob(d.done),
            ...wal.perJob(d.done),
          },
        },
      );
    }),
};
