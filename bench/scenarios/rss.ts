import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { analyze, BENCH_DIR, insertQueued, RESULTS, ROOT, withDatabase } from '../lib/harness.ts';
import { migrateEngine } from '../lib/pg.ts';
import { log, recordQuiet } from '../lib/results.ts';
import { eachRound } from './interleaved.ts';
import type { Scenario } from './types.ts';

const JOBS = 100_000;
const CHILD = join(RESULTS, '.build', 'rss-child.mjs');

/** lib/rss-child.ts bundled by esbuild, like the Lambda artifact. */
function bundleChild(): void {
  mkdirSync(dirname(CHILD), { recursive: true });
  execFileSync(
    join(ROOT, 'node_modules', '.bin', 'esbuild'),
    [
      join(BENCH_DIR, 'lib', 'rss-child.ts'),
      '--bundle',
      '--platform=node',
      '--format=esm',
      '--target=node20',
      `--outfile=${CHILD}`,
      '--log-level=error',
      // Bundled CJS deps call require(); give the ESM bundle one.
      "--banner:js=import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    ],
    { stdio: 'inherit' },
  );
}

/** (g) Peak RSS of one consumer process (the bundle) draining 100,000 jobs. */
async function peakRss(round: number): Promise<void> {
  if (round === 1) bundleChild();
  await withDatabase(`rss_${round}`, async (db) => {
    await migrateEngine(db.url);
    await insertQueued(db.url, JOBS);
    await analyze(db.url);
    const res = spawnSync(process.execPath, [CHILD, db.url], {
      encoding: 'utf8',
      maxBuffer: 10 * 1024 * 1024,
    });
    if (res.status !== 0) throw new Error(`rss child failed: ${res.stderr}`);
    const lastLine = res.stdout.trim().split('\n').pop()!;
    const r = JSON.parse(lastLine) as {
      completed: number;
      invocations: number;
      seconds: number;
      peakRssMb: number;
    };
    recordQuiet({
      scenario: 'rss',
      system: 'consumer-bundled',
      round,
      jobs: r.completed,
      seconds: r.seconds,
      rate: r.completed / r.seconds,
      extra: { peakRssMb: r.peakRssMb, invocations: r.invocations },
    });
    log(
      `  rss        r${round} peak RSS ${r.peakRssMb.toFixed(1)} MB, ${r.completed} jobs in ${r.seconds.toFixed(1)} s`,
    );
  });
}

export const rssScenario: Scenario = {
  id: 'rss',
  quick: false,
  intro: 'peak RSS (g): one consumer process, 100,000 jobs',
  run: () => eachRound(peakRss),
};
