/**
 * `npm run bench` — durable-task-engine beside a raw SKIP LOCKED loop, graphile-worker and
 * pg-boss, on one PostgreSQL, in one run. Each system gets a fresh database per round
 * (bench_<pid>_<system>_<round>, dropped after); systems run interleaved (A B C A B C …) so drift
 * on a shared machine hits every system alike. Every claim in docs/BENCHMARKS.md is a ratio
 * from one run.
 *
 *   npm run bench                 full run: 3 rounds of everything (issue 7 scenarios a–g)
 *   npm run bench -- --quick      one round, 20,000 jobs, drain and enqueue only (< 2 min)
 *   npm run bench -- --rounds 5   more rounds
 *   npm run bench -- --only trickle,reaper   some scenarios by id (scenarios/index.ts)
 *   npm run bench -- --only previous-release --release-ref a413667   today's code beside a release
 *
 * Where things are: lib/options.ts (flags), scenarios/ (one module per scenario id), systems/
 * (one adapter per system id; ids.ts has every id and label), report/ (targets.ts: the target
 * tables keyed by ids; tables.ts and render.ts: the report), lib/ (database, handlers, CPU).
 *
 * Not a test: nothing here runs in `npm test`. Loopback PostgreSQL only (BENCH_DATABASE_URL,
 * else DATABASE_URL, else postgres://root@127.0.0.1:5432/test, which is only used to CREATE
 * and DROP the bench databases).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { BENCH_DIR, ensureBenchDeps, handlers, installProcessHandlers, RESULTS } from './lib/harness.ts';
import {
  ARGV,
  BATCH,
  JOBS,
  ONLY,
  QUICK,
  RELEASE_REF,
  ROUNDS,
  TUNED,
  TUNED_BATCH,
  WORKERS,
  wants,
} from './lib/options.ts';
import { dropLeftovers, serverVersion } from './lib/pg.ts';
import { log, notes, samples } from './lib/results.ts';
import { round } from './lib/stats.ts';
import { markdown, printReport } from './report/render.ts';
import { cpuTable, table, targets } from './report/tables.ts';
import { SCENARIOS } from './scenarios/index.ts';
import { peerConfigs } from './systems/index.ts';
import { releaseInfo } from './systems/release.ts';

const command = `npm run bench${ARGV.length ? ` -- ${ARGV.join(' ')}` : ''}`;

async function describeMachine() {
  return {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    ramGb: round(totalmem() / 1024 ** 3, 1),
    node: process.version,
    postgres: await serverVersion(),
  };
}

/** The results file (JSON, everything) and its Markdown tables beside it. */
function writeResults(
  started: Date,
  machine: Awaited<ReturnType<typeof describeMachine>>,
  text: string,
): string {
  mkdirSync(RESULTS, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const file = join(RESULTS, `${QUICK ? 'quick' : 'full'}-${stamp}.json`);
  const benchPkg = JSON.parse(readFileSync(join(BENCH_DIR, 'package.json'), 'utf8')) as {
    dependencies: unknown;
  };
  const results = {
    date: started.toISOString(),
    durationSeconds: (Date.now() - started.getTime()) / 1000,
    command,
    machine,
    settings: {
      jobs: JOBS,
      workers: WORKERS,
      batch: BATCH,
      tuned: TUNED,
      rounds: ROUNDS,
      quick: QUICK,
      releaseRef: RELEASE_REF,
    },
    // The previous-release scenario's code: the ref as given and the commit it resolved to (when it ran).
    release: releaseInfo,
    peers: { dependencies: benchPkg.dependencies, configs: peerConfigs },
    rows: table(),
    cpu: cpuTable(),
    ratios: targets(),
    samples,
    notes,
    report: text,
  };
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(file.replace(/\.json$/, '.md'), markdown());
  return file;
}

async function main(): Promise<void> {
  const unknown = [...(ONLY ?? [])].filter((id) => !SCENARIOS.some((s) => s.id === id));
  if (unknown.length)
    throw new Error(
      `--only: no scenario ${unknown.join(', ')} (known: ${SCENARIOS.map((s) => s.id).join(' ')})`,
    );
  installProcessHandlers();
  ensureBenchDeps();
  await handlers();
  const leftovers = await dropLeftovers();
  if (leftovers.length) log(`dropped leftover databases: ${leftovers.join(', ')}`);

  const started = new Date();
  const machine = await describeMachine();
  log(`durable-task-engine bench — ${started.toISOString()} — ${command}`);
  log(
    `machine: ${machine.nproc} × ${machine.cpu}, ${machine.ramGb} GB RAM, Node ${machine.node}, PostgreSQL ${machine.postgres}`,
  );
  log(
    `main: ${JOBS.toLocaleString('en-US')} no-op jobs, ${WORKERS} workers, batch ${BATCH} (tuned: ${TUNED_BATCH}), ${ROUNDS} interleaved round(s)`,
  );
  for (const scenario of SCENARIOS) {
    if (!wants(scenario)) continue;
    if (scenario.intro) log(scenario.intro);
    await scenario.run();
  }
  const file = writeResults(started, machine, printReport());
  log(`\nresults: ${file} (${((Date.now() - started.getTime()) / 1000).toFixed(0)} s)`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
