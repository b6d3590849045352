/**
 * `npm run bench` — durable-task-engine beside a raw SKIP LOCKED loop, graphile-worker and
 * pg-boss, on one PostgreSQL, in one run. Each system gets a fresh database per round
 * (bench_<system>_<round>, dropped after); systems run interleaved (A B C A B C …) so drift
 * on a shared machine hits every system alike. Every claim in docs/BENCHMARKS.md is a ratio
 * from one run.
 *
 *   npm run bench                 full run: 3 rounds of everything (issue 7 scenarios a–g)
 *   npm run bench -- --quick      one round, 20,000 jobs, drain and enqueue only (< 2 min)
 *   npm run bench -- --rounds 5   more rounds
 *
 * Not a test: nothing here runs in `npm test`. Loopback PostgreSQL only (BENCH_DATABASE_URL,
 * else DATABASE_URL, else postgres://root@127.0.0.1:5432/test, which is only used to CREATE
 * and DROP the bench databases).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { enqueue } from '../functions/engine/index.ts';
import { cpuAvailable, cpuNow, cpuPerJob } from './lib/cpu.ts';
import { engineDrain, noopRequests, timeEnqueueMany } from './lib/engine.ts';
import { memoryDb } from './lib/memory-db.ts';
import {
  ADMIN_URL,
  dropLeftovers,
  engineDb,
  type FreshDatabase,
  freshDatabase,
  migrateEngine,
  serverVersion,
  setCounting,
} from './lib/pg.ts';
import { rawDrain, rawSetup, rawUnnestEnqueue } from './lib/raw.ts';
import { percentile, round, type Summary, summarize } from './lib/stats.ts';
import type { PeerAdapter } from './lib/types.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(HERE);
const RESULTS = join(HERE, 'results');

// ---------------------------------------------------------------- options
const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const option = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? Number(argv[i + 1]) : fallback;
};
const QUICK = flag('quick');
const ROUNDS = option('rounds', QUICK ? 1 : 3);
const JOBS = option('jobs', 20_000);
const WORKERS = 4;
/** --only main,consumer-js,scale,trickle,deployed-trickle,claim,reaper,bigtable,rss: run a subset (for working on one scenario). */
const ONLY = (() => {
  const i = argv.indexOf('--only');
  return i >= 0 && argv[i + 1] ? new Set(argv[i + 1]!.split(',')) : undefined;
})();
const wants = (scenario: string) => (ONLY ? ONLY.has(scenario) : scenario === 'main' || !QUICK);
const BIG_ROWS = option('big-rows', 5_000_000);
const BATCH = 50;
/**
 * The throughput tuning documented for users (README, "Tuning for throughput"): claim 500 per
 * statement and run up to 100 tasks at once. Judged against the raw loop at the same claim size.
 */
const TUNED = { BATCH_SIZE: '500', CONSUMER_CONCURRENCY: '100' } as const;
const TUNED_BATCH = Number(TUNED.BATCH_SIZE);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || !Number.isInteger(JOBS) || JOBS < 100 || JOBS > 1_000_000) {
  throw new Error('--rounds must be ≥ 1 and --jobs between 100 and 1,000,000');
}

// ---------------------------------------------------------------- bench dependencies
/** The peers are bench/'s own dependencies: install them on first use (a clean clone has none). */
function ensureBenchDeps(): void {
  if (
    existsSync(join(HERE, 'node_modules', 'graphile-worker')) &&
    existsSync(join(HERE, 'node_modules', 'pg-boss'))
  )
    return;
  console.log('installing bench dependencies (npm ci --prefix bench) …');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['ci', '--prefix', HERE, '--no-audit', '--no-fund', '--loglevel=error'], {
    stdio: 'inherit',
  });
  if (r.status !== 0) throw new Error('npm ci --prefix bench failed');
}

/** Loaded by URL so the project's type check never needs bench/node_modules. */
async function loadPeer(file: string): Promise<PeerAdapter> {
  const mod = (await import(pathToFileURL(join(HERE, 'peers', file)).href)) as { adapter: PeerAdapter };
  return mod.adapter;
}

// ---------------------------------------------------------------- results
interface Sample {
  scenario: string;
  system: string;
  round: number;
  jobs: number;
  workers?: number;
  seconds: number;
  rate: number;
  load1?: number;
  extra?: Record<string, unknown>;
}
// Each system's database is dropped WITH (FORCE) after its run; a peer's idle pool client that
// outlived its runner then sees 57P01 and, with no listener, would crash the whole run (seen with
// graphile-worker after the 100,000-job scale round). That one error is expected; others are not.
process.on('uncaughtException', (err: Error & { code?: string }) => {
  if (err.code === '57P01') {
    process.stderr.write(`ignored after a forced database drop: ${err.message}\n`);
    return;
  }
  throw err;
});

const samples: Sample[] = [];
const notes: string[] = [];
const log = (s: string) => process.stdout.write(`${s}\n`);

function record(s: Omit<Sample, 'rate'>): Sample {
  // The 1-minute load average when the sample ended: on a shared machine it says how far to trust it.
  const sample = { ...s, rate: s.jobs / s.seconds, load1: round(loadavg()[0]!, 1) };
  samples.push(sample);
  log(
    `  ${s.scenario.padEnd(10)} ${s.system.padEnd(26)} r${s.round} ${String(s.jobs).padStart(7)} jobs ${s.seconds.toFixed(3).padStart(8)} s ${Math.round(sample.rate).toLocaleString('en-US').padStart(8)} jobs/s  load ${sample.load1}`,
  );
  return sample;
}

/** A fresh database for one system in one round, always dropped (also on Ctrl-C / SIGTERM). */
const open = new Set<FreshDatabase>();
async function withDatabase<T>(name: string, fn: (db: FreshDatabase) => Promise<T>): Promise<T> {
  const db = await freshDatabase(name);
  open.add(db);
  try {
    return await fn(db);
  } finally {
    open.delete(db);
    await db.drop();
  }
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: dropping ${[...open].map((d) => d.name).join(', ') || 'nothing'} and stopping`);
    void Promise.allSettled([...open].map((d) => d.drop())).then(() => process.exit(130));
  });
}

async function sql(url: string, text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(text, values);
  } finally {
    await c.end();
  }
}

/**
 * After the enqueue and before the drain, every system's database gets ANALYZE: a freshly
 * filled, never-analyzed table makes the planner guess, and a long-lived queue table has
 * statistics. The never-analyzed case of our engine is measured separately (engine-fn-cold).
 */
const analyze = (url: string) => sql(url, 'ANALYZE');

// ---------------------------------------------------------------- systems
type Handlers = typeof import('./lib/handlers.ts');
let handlers: Handlers;

type SystemRun = (round: number, jobs: number, workers: number, scenario: string) => Promise<void>;

const systems: Record<string, SystemRun> = {
  raw: async (round, jobs, workers, scenario) => rawSystem(round, jobs, workers, scenario, BATCH),
  'raw-tuned': async (round, jobs, workers, scenario) =>
    rawSystem(round, jobs, workers, scenario, TUNED_BATCH),

  'engine-fn': async (round, jobs, workers, scenario) => engineFn(round, jobs, workers, scenario, {}),
  'engine-fn-nocount': async (round, jobs, workers, scenario) =>
    engineFn(round, jobs, workers, scenario, { counting: false }),
  'engine-fn-advisory': async (round, jobs, workers, scenario) =>
    engineFn(round, jobs, workers, scenario, { advisoryLocks: true }),
  'engine-fn-cold': async (round, jobs, workers, scenario) =>
    engineFn(round, jobs, workers, scenario, { analyze: false }),

  consumer: async (round, jobs, workers, scenario) =>
    withDatabase(`consumer_${round}`, async (db) => {
      await migrateEngine(db.url);
      const enq = await handlers.apiBatchEnqueue(db.url, jobs);
      if (scenario === 'main')
        record({ scenario: 'enqueue', system: 'API POST /jobs/batch', round, jobs, seconds: enq.seconds });
      await analyze(db.url);
      const cpu = cpuMeter(db.name);
      const r = await handlers.consumerDrain(db.url, jobs, workers, {}, cpu.stop);
      record({
        scenario,
        system: 'engine consumer handler',
        round,
        jobs: r.done,
        workers,
        seconds: r.seconds,
        extra: {
          invocations: r.invocations,
          logBytes: r.logBytes,
          ...r.summaries,
          claimP99Ms: percentile(r.claimMs, 99),
          ...cpu.perJob(r.done),
        },
      });
    }),

  'consumer-tuned': async (round, jobs, workers, scenario) =>
    withDatabase(`consumertuned_${round}`, async (db) => {
      await migrateEngine(db.url);
      await handlers.apiBatchEnqueue(db.url, jobs);
      await analyze(db.url);
      const cpu = cpuMeter(db.name);
      const r = await handlers.consumerDrain(db.url, jobs, workers, { ...TUNED }, cpu.stop);
      record({
        scenario,
        system: 'engine consumer handler, tuned',
        round,
        jobs: r.done,
        workers,
        seconds: r.seconds,
        extra: {
          ...TUNED,
          invocations: r.invocations,
          ...r.summaries,
          claimP99Ms: percentile(r.claimMs, 99),
          ...cpu.perJob(r.done),
        },
      });
    }),

  'consumer-nocount': async (round, jobs, workers, scenario) =>
    withDatabase(`consumernc_${round}`, async (db) => {
      await migrateEngine(db.url);
      await setCounting(db.url, false);
      await handlers.apiBatchEnqueue(db.url, jobs);
      await analyze(db.url);
      const r = await handlers.consumerDrain(db.url, jobs, workers);
      record({
        scenario,
        system: 'engine consumer, no counting',
        round,
        jobs: r.done,
        workers,
        seconds: r.seconds,
      });
    }),

  graphile: async (round, jobs, workers, scenario) =>
    peer('graphile.ts', 'graphile', round, jobs, workers, scenario),
  pgboss: async (round, jobs, workers, scenario) =>
    peer('pgboss.ts', 'pgboss', round, jobs, workers, scenario),

  'enqueue-unnest': async (round, jobs) =>
    withDatabase(`unnest_${round}`, async (db) => {
      await migrateEngine(db.url);
      const seconds = await rawUnnestEnqueue(db.url, noopRequests(jobs));
      record({ scenario: 'enqueue', system: 'raw INSERT … unnest', round, jobs, seconds });
    }),
};

/** The raw SKIP LOCKED loop at a claim size (the shipped BATCH_SIZE, or the tuned one). */
async function rawSystem(round: number, jobs: number, workers: number, scenario: string, batch: number) {
  return withDatabase(`raw${batch}_${round}`, async (db) => {
    await rawSetup(db.url, jobs);
    const cpu = cpuMeter(db.name);
    const t0 = performance.now();
    const done = await rawDrain(db.url, workers, batch, undefined, cpu.stop);
    const seconds = (performance.now() - t0) / 1000;
    record({
      scenario,
      system: batch === BATCH ? 'raw SKIP LOCKED' : `raw SKIP LOCKED, claim ${batch}`,
      round,
      jobs: done,
      workers,
      seconds,
      extra: cpu.perJob(done),
    });
  });
}

async function engineFn(
  round: number,
  jobs: number,
  workers: number,
  scenario: string,
  o: { counting?: boolean; advisoryLocks?: boolean; analyze?: boolean },
): Promise<void> {
  const label =
    o.counting === false
      ? 'engine functions, no counting'
      : o.advisoryLocks
        ? 'engine functions, advisory'
        : o.analyze === false
          ? 'engine functions, unanalyzed'
          : 'engine functions';
  const slug =
    o.counting === false
      ? 'enginenc'
      : o.advisoryLocks
        ? 'engineadv'
        : o.analyze === false
          ? 'enginecold'
          : 'engine';
  return withDatabase(`${slug}_${round}`, async (db) => {
    await migrateEngine(db.url);
    if (o.counting === false) await setCounting(db.url, false);
    const enqSeconds = await timeEnqueueMany(db.url, noopRequests(jobs));
    if (scenario === 'main' && label === 'engine functions')
      record({ scenario: 'enqueue', system: 'enqueueMany', round, jobs, seconds: enqSeconds });
    if (o.analyze !== false) await analyze(db.url);
    const cpu = cpuMeter(db.name);
    const t0 = performance.now();
    const r = await engineDrain(db.url, {
      loops: workers,
      batch: BATCH,
      advisoryLocks: o.advisoryLocks ?? false,
      onDrained: cpu.stop,
    });
    const seconds = (performance.now() - t0) / 1000;
    const left = Number(
      (await sql(db.url, "SELECT count(*) AS n FROM jobs WHERE status <> 'completed'")).rows[0].n,
    );
    record({
      scenario,
      system: label,
      round,
      jobs: r.done,
      workers,
      seconds,
      extra: { lost: r.lost, left, ...cpu.perJob(r.done) },
    });
    if (left > 0) notes.push(`${label} round ${round}: ${left} jobs left unfinished after the loops exited`);
  });
}

async function peer(
  file: string,
  slug: string,
  round: number,
  jobs: number,
  workers: number,
  scenario: string,
) {
  const adapter = await loadPeer(file);
  return withDatabase(`${slug}_${round}`, async (db) => {
    // CPU from just before the drain (the harness's ANALYZE is done) to the moment its table is
    // seen drained: the peer's own start-up counts here, though its timed window leaves it out.
    let cpu: CpuMeter | undefined;
    const r = await adapter.drain(
      db.url,
      jobs,
      workers,
      async () => {
        await analyze(db.url);
        cpu = cpuMeter(db.name);
      },
      () => cpu?.stop(),
    );
    peerConfigs[adapter.name] = { version: adapter.version, config: r.config };
    record({
      scenario,
      system: `${adapter.name} ${adapter.version}`,
      round,
      jobs: r.done,
      workers,
      seconds: r.seconds,
      extra: { enqueueSeconds: r.enqueueSeconds, ...cpu?.perJob(r.done) },
    });
  });
}
const peerConfigs: Record<string, { version: string; config: string }> = {};

/**
 * CPU per job over a drain (lib/cpu.ts): the PostgreSQL server's share for `database` and this
 * process's. Both share the machine's cores, so together they bound the drain rate. Readings
 * start when the meter is made; `stop` is called while the drain's connections are still open
 * (a backend that exits first is lost). A meter never stopped reports nothing, not a zero.
 */
interface CpuMeter {
  stop(): void;
  perJob(jobs: number): Record<string, number>;
}
function cpuMeter(database: string): CpuMeter {
  const from = cpuNow(database);
  let to: ReturnType<typeof cpuNow> | undefined;
  return {
    stop: () => {
      to = cpuNow(database);
    },
    perJob: (jobs): Record<string, number> => {
      if (!cpuAvailable || !to || jobs === 0) return {};
      const c = cpuPerJob(from, to, jobs);
      return { dbCpuUsPerJob: round(c.dbUs, 1), nodeCpuUsPerJob: round(c.benchUs, 1) };
    },
  };
}

/**
 * The consumer handler's own JavaScript per job, with no database sharing the CPU: the same
 * createHandler (shipped defaults, logging at info into a discarding stream) over an in-memory
 * stand-in for jobs_claim/jobs_complete (lib/memory-db.ts). A diagnostic, never a drain rate.
 */
async function consumerJs(roundNo: number): Promise<void> {
  const jobs = 100_000;
  const { createHandler } = await import('../functions/consumer.ts');
  const { discard, lambdaContext } = await import('./lib/lambda.ts');
  const db = memoryDb(jobs);
  const h = createHandler({
    db,
    env: { DATABASE_URL: ADMIN_URL, CONSUMER_IDLE_EXIT_MS: '0' },
    logStream: discard(),
  });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const summary = await h({}, lambdaContext('bench-consumer-js', 600_000));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  if (summary.completed !== jobs || db.completed() !== jobs)
    throw new Error(`consumer on the in-memory database completed ${summary.completed} of ${jobs}`);
  samples.push({
    scenario: 'consumer-js',
    system: 'engine consumer handler, in-memory database',
    round: roundNo,
    jobs,
    seconds,
    rate: jobs / seconds,
    extra: { nodeCpuUsPerJob: round((cpu.user + cpu.system) / jobs, 2) },
  });
  log(
    `  consumer-js r${roundNo} ${((cpu.user + cpu.system) / jobs).toFixed(2)} µs of Node CPU per job (no database)`,
  );
}

// ---------------------------------------------------------------- scenarios
async function interleaved(scenario: string, names: string[], jobs: number, workers: number, rounds: number) {
  for (let round = 1; round <= rounds; round++) {
    for (const name of names) await systems[name]!(round, jobs, workers, scenario);
  }
}

/** (c) Enqueue→start latency of a trickle (50 jobs/s for 20 s) while one consumer is live. */
async function trickle(round: number): Promise<void> {
  await withDatabase(`trickle_${round}`, async (db) => {
    await migrateEngine(db.url);
    await analyze(db.url);
    const producer = engineDb(db.url, 1, 'bench-producer');
    const rate = 50;
    const total = 1000;
    let stop = false;
    const consumer = (async () => {
      const { createHandler } = await import('../functions/consumer.ts');
      const { discard, lambdaContext } = await import('./lib/lambda.ts');
      const h = createHandler({ env: { DATABASE_URL: db.url }, logStream: discard() });
      while (!stop) await h({}, lambdaContext('bench-trickle', 60_000));
    })();
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await enqueue(producer, { type: 'example.echo', payload: { i } });
    }
    const pending = "SELECT count(*)::int AS n FROM jobs WHERE status IN ('queued', 'running')";
    while ((await sql(db.url, pending)).rows[0].n > 0) await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await consumer;
    await producer.end();
    // Both ends are database times: created_at (enqueue commit's now()) to started_at (claim's now()).
    const { rows } = await sql(
      db.url,
      'SELECT extract(epoch FROM started_at - created_at) * 1000 AS ms FROM jobs WHERE started_at IS NOT NULL',
    );
    const ms = rows.map((r) => Number(r.ms));
    samples.push({
      scenario: 'trickle',
      system: 'engine consumer handler',
      round,
      jobs: ms.length,
      seconds: 20,
      rate,
      extra: { p50Ms: percentile(ms, 50), p99Ms: percentile(ms, 99), maxMs: Math.max(...ms) },
    });
    log(
      `  trickle    r${round} p50 ${percentile(ms, 50).toFixed(1)} ms  p99 ${percentile(ms, 99).toFixed(1)} ms  (${ms.length} jobs)`,
    );
  });
}

/** Deployed-shape trickle (issue 17; bench/wake.ts): wake on enqueue against a 60 s schedule. */
async function deployedTrickle(round: number): Promise<void> {
  await withDatabase(`wake_${round}`, async (db) => {
    await migrateEngine(db.url);
    await analyze(db.url);
    const { deployedShapeTrickle } = await import('./wake.ts');
    const r = await deployedShapeTrickle(db.url);
    samples.push({
      scenario: 'deployed-trickle',
      system: 'engine api + consumer handlers',
      round,
      jobs: r.trickleJobs + r.delayedJobs,
      seconds: r.seconds,
      rate: 20,
      extra: { ...r },
    });
    log(
      `  deployed-trickle r${round} start p50 ${r.startP50Ms.toFixed(1)} ms  p99 ${r.startP99Ms.toFixed(1)} ms  max ${r.startMaxMs.toFixed(1)} ms  first ${r.firstJobMs.toFixed(1)} ms; delayed late p50 ${r.delayedLateP50Ms.toFixed(1)} ms  p99 ${r.delayedLateP99Ms.toFixed(1)} ms; wake invokes ${r.wakeInvokes} (${r.invokesPerJob.toFixed(4)}/job), invocations ${r.invocations}`,
    );
  });
}

/** (d) Claim statement latency with 16 concurrent claimers, default and advisory paths. */
async function claimLatency(round: number, advisoryLocks: boolean): Promise<void> {
  const jobs = 100_000;
  await withDatabase(`claim_${advisoryLocks ? 'adv' : 'def'}_${round}`, async (db) => {
    await migrateEngine(db.url);
    await sql(
      db.url,
      `INSERT INTO jobs (task_type, payload) SELECT 'example.echo', '{}'::jsonb FROM generate_series(1, $1::int)`,
      [jobs],
    );
    await analyze(db.url);
    const claims: number[] = [];
    const t0 = performance.now();
    const r = await engineDrain(db.url, {
      loops: 16,
      batch: BATCH,
      advisoryLocks,
      onClaim: (ms, got) => {
        if (got > 0) claims.push(ms);
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    recordClaim16(
      advisoryLocks ? 'engine functions, advisory' : 'engine functions',
      round,
      r.done,
      seconds,
      claims,
      {
        lost: r.lost,
      },
    );
  });
}

/** Records one claim16 sample: its claim statements' p50 and p99, printed as they come. */
function recordClaim16(
  system: string,
  round: number,
  jobs: number,
  seconds: number,
  claims: number[],
  extra: Record<string, number> = {},
): void {
  const p50 = percentile(claims, 50);
  const p99 = percentile(claims, 99);
  record({
    scenario: 'claim16',
    system,
    round,
    jobs,
    workers: 16,
    seconds,
    extra: { claimP50Ms: p50, claimP99Ms: p99, claims: claims.length, ...extra },
  });
  log(`             claim p50 ${p50.toFixed(2)} ms p99 ${p99.toFixed(2)} ms`);
}

/**
 * (d), the reference: the raw SKIP LOCKED loop's claim statement with 16 claimers on the same
 * server, so the engine's claim p99 can be read against what the machine gives a minimal claim.
 */
async function rawClaimLatency(round: number): Promise<void> {
  const jobs = 100_000;
  await withDatabase(`claim_raw_${round}`, async (db) => {
    await rawSetup(db.url, jobs);
    const claims: number[] = [];
    const t0 = performance.now();
    const done = await rawDrain(db.url, 16, BATCH, (ms) => claims.push(ms));
    recordClaim16('raw SKIP LOCKED', round, done, (performance.now() - t0) / 1000, claims);
  });
}

/** (e) The reaper handler recovering 100,000 expired leases. */
async function reaper(round: number): Promise<void> {
  const jobs = 100_000;
  await withDatabase(`reaper_${round}`, async (db) => {
    await migrateEngine(db.url);
    await sql(
      db.url,
      `INSERT INTO jobs (task_type, payload, status, attempts, lease_token, locked_at, locked_by, started_at, lease_seconds)
       SELECT 'example.echo', '{}'::jsonb, 'running', 1, 1, now() - interval '1 hour', 'dead-worker', now() - interval '1 hour', 30
       FROM generate_series(1, $1::int)`,
      [jobs],
    );
    await analyze(db.url);
    const r = await handlers.reaperRecover(db.url, jobs);
    record({
      scenario: 'reaper',
      system: 'engine reaper handler',
      round,
      jobs: r.recovered,
      seconds: r.seconds,
      extra: { invocations: r.invocations },
    });
  });
}

/** (f) Drain with 5,000,000 finished rows in the table, against an empty table, same round. */
async function bigTable(rounds: number): Promise<void> {
  const finished = BIG_ROWS;
  const big = await freshDatabase('bigtable');
  open.add(big);
  try {
    await migrateEngine(big.url);
    const t0 = performance.now();
    await sql(
      big.url,
      `INSERT INTO jobs (task_type, payload, status, attempts, lease_token, started_at, finished_at, created_at, updated_at)
       SELECT 'example.echo', '{}'::jsonb, 'completed', 1, 1, now() - interval '1 day', now() - interval '1 day',
              now() - interval '1 day', now() - interval '1 day'
       FROM generate_series(1, $1::int)`,
      [finished],
    );
    await sql(big.url, 'VACUUM ANALYZE jobs');
    log(
      `  bigtable   built ${finished.toLocaleString('en-US')} finished rows in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    for (let round = 1; round <= rounds; round++) {
      await handlers.apiBatchEnqueue(big.url, JOBS);
      await analyze(big.url);
      const r = await handlers.consumerDrain(big.url, JOBS, WORKERS);
      record({
        scenario: 'bigtable',
        system: 'consumer, 5M finished rows',
        round,
        jobs: r.done,
        workers: WORKERS,
        seconds: r.seconds,
      });
      await systems.consumer!(round, JOBS, WORKERS, 'bigtable');
    }
  } finally {
    open.delete(big);
    await big.drop();
  }
}

/** (g) Peak RSS of one consumer process (esbuild bundle, like the Lambda artifact) draining 100,000 jobs. */
async function peakRss(round: number): Promise<void> {
  const jobs = 100_000;
  const out = join(RESULTS, '.build', 'rss-child.mjs');
  if (round === 1) {
    mkdirSync(dirname(out), { recursive: true });
    execFileSync(
      join(ROOT, 'node_modules', '.bin', 'esbuild'),
      [
        join(HERE, 'lib', 'rss-child.ts'),
        '--bundle',
        '--platform=node',
        '--format=esm',
        '--target=node20',
        `--outfile=${out}`,
        '--log-level=error',
        // Bundled CJS deps call require(); give the ESM bundle one.
        "--banner:js=import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
      ],
      { stdio: 'inherit' },
    );
  }
  await withDatabase(`rss_${round}`, async (db) => {
    await migrateEngine(db.url);
    await sql(
      db.url,
      `INSERT INTO jobs (task_type, payload) SELECT 'example.echo', '{}'::jsonb FROM generate_series(1, $1::int)`,
      [jobs],
    );
    await analyze(db.url);
    const res = spawnSync(process.execPath, [out, db.url], { encoding: 'utf8', maxBuffer: 10 * 1024 * 1024 });
    if (res.status !== 0) throw new Error(`rss child failed: ${res.stderr}`);
    const lastLine = res.stdout.trim().split('\n').pop()!;
    const r = JSON.parse(lastLine) as {
      completed: number;
      invocations: number;
      seconds: number;
      peakRssMb: number;
    };
    samples.push({
      scenario: 'rss',
      system: 'consumer process (bundled)',
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

// ---------------------------------------------------------------- report
interface Row {
  scenario: string;
  system: string;
  workers?: number;
  jobs: number;
  rate: Summary;
  seconds: Summary;
}

function table(): Row[] {
  const groups = new Map<string, Sample[]>();
  for (const s of samples) {
    if (s.scenario === 'trickle' || s.scenario === 'rss' || s.scenario === 'consumer-js') continue;
    const key = `${s.scenario}|${s.system}|${s.workers ?? ''}|${Math.round(s.jobs / 10_000)}`;
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  return [...groups.values()].map((g) => ({
    scenario: g[0]!.scenario,
    system: g[0]!.system,
    workers: g[0]!.workers,
    jobs: g[0]!.jobs,
    rate: summarize(g.map((s) => s.rate)),
    seconds: summarize(g.map((s) => s.seconds)),
  }));
}

/** Per-round ratio of two systems' rates in one scenario: the numbers the targets are about. */
function ratios(scenario: string, num: string, den: string, workers?: number): number[] {
  // Exact name, or the name followed by a version (peers): 'raw SKIP LOCKED' must not pick
  // 'raw SKIP LOCKED, claim 500', nor 'engine functions' its variants.
  const pick = (system: string, round: number) =>
    samples.find(
      (s) =>
        s.scenario === scenario &&
        (s.system === system || s.system.startsWith(`${system} `)) &&
        s.round === round &&
        (workers === undefined || s.workers === workers),
    );
  const out: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const a = pick(num, round);
    const b = pick(den, round);
    if (a && b) out.push(a.rate / b.rate);
  }
  return out;
}

interface Target {
  what: string;
  ratios: number[];
  target: number;
  /** 'min': the figure must be ≥ target; 'max': ≤ target. */
  kind: 'min' | 'max';
}

/** The consumer handler against the peers and the raw loop: shipped defaults, then the tuning. */
function consumerTargets(): Target[] {
  const consumers = [
    { label: 'consumer drain', system: 'engine consumer handler', raw: 'raw SKIP LOCKED' },
    {
      label: `tuned consumer (claim ${TUNED_BATCH})`,
      system: 'engine consumer handler, tuned',
      raw: `raw SKIP LOCKED, claim ${TUNED_BATCH}`,
    },
  ];
  return consumers.flatMap((c) =>
    [
      { what: `${c.label} ÷ graphile-worker (4 workers)`, den: 'graphile-worker', target: 1.5 },
      { what: `${c.label} ÷ pg-boss (4 workers)`, den: 'pg-boss', target: 3 },
      { what: `${c.label} ÷ ${c.raw} (same claim size)`, den: c.raw, target: 0.8 },
    ].map((x) => ({
      what: x.what,
      ratios: ratios('main', c.system, x.den),
      target: x.target,
      kind: 'min' as const,
    })),
  );
}

function targets(): Target[] {
  const t: Target[] = [
    ...consumerTargets(),
    {
      what: 'engine-functions drain ÷ raw loop (issue 2)',
      ratios: ratios('main', 'engine functions', 'raw SKIP LOCKED'),
      target: 0.75,
      kind: 'min',
    },
    {
      what: 'consumer drain ÷ engine-functions drain (issue 3)',
      ratios: ratios('main', 'engine consumer handler', 'engine functions'),
      target: 0.85,
      kind: 'min',
    },
    {
      what: 'engine functions: counting on ÷ off (issue 4)',
      ratios: ratios('main', 'engine functions', 'engine functions, no counting'),
      target: 0.9,
      kind: 'min',
    },
    {
      what: 'enqueueMany ÷ raw INSERT … unnest',
      ratios: ratios('enqueue', 'enqueueMany', 'raw INSERT …'),
      target: 0.75,
      kind: 'min',
    },
  ];
  const advisory = ratios('main', 'engine functions, advisory', 'engine functions');
  if (advisory.length)
    t.push({
      what: 'advisory path ÷ default path (engine functions)',
      ratios: advisory,
      target: 0.9,
      kind: 'min',
    });
  const nocountConsumer = ratios('main', 'engine consumer handler', 'engine consumer, no counting');
  if (nocountConsumer.length)
    t.push({
      what: 'consumer: counting on ÷ off (issue 4)',
      ratios: nocountConsumer,
      target: 0.9,
      kind: 'min',
    });
  const big = ratios('bigtable', 'consumer, 5M finished rows', 'engine consumer handler');
  if (big.length)
    t.push({ what: 'drain with 5M finished rows ÷ empty table', ratios: big, target: 0.9, kind: 'min' });
  return t.filter((x) => x.ratios.length > 0);
}

function absoluteTargets(): string[] {
  const lines: string[] = [];
  const rateOf = (scenario: string, system: string) =>
    samples.filter((s) => s.scenario === scenario && s.system.startsWith(system)).map((s) => s.rate);
  const check = (
    what: string,
    xs: number[],
    target: number,
    kind: 'min' | 'max',
    unit: string,
    digits = 0,
  ) => {
    if (!xs.length) return;
    const s = summarize(xs);
    const ok = kind === 'min' ? s.median >= target : s.median <= target;
    lines.push(
      `${ok ? 'MET ' : 'MISS'}  ${what}: median ${round(s.median, digits)} ${unit} (${round(s.min, digits)}–${round(s.max, digits)}), target ${kind === 'min' ? '≥' : '≤'} ${target} ${unit}`,
    );
  };
  check('enqueueMany', rateOf('enqueue', 'enqueueMany'), 50_000, 'min', 'jobs/s');
  check('API batch route enqueue', rateOf('enqueue', 'API POST'), 50_000, 'min', 'jobs/s');
  const extra = (scenario: string, key: string) =>
    samples
      .filter((s) => s.scenario === scenario && s.extra?.[key] !== undefined)
      .map((s) => Number(s.extra![key]));
  check('trickle latency p50', extra('trickle', 'p50Ms'), 25, 'max', 'ms', 1);
  check('trickle latency p99', extra('trickle', 'p99Ms'), 100, 'max', 'ms', 1);
  check(
    'claim p99, 16 claimers (default path)',
    samples
      .filter((s) => s.scenario === 'claim16' && s.system === 'engine functions')
      .map((s) => Number(s.extra!.claimP99Ms)),
    20,
    'max',
    'ms',
    2,
  );
  check(
    'claim p99, 16 claimers (advisory path)',
    samples
      .filter((s) => s.scenario === 'claim16' && s.system.includes('advisory'))
      .map((s) => Number(s.extra!.claimP99Ms)),
    20,
    'max',
    'ms',
    2,
  );
  const rawClaimP99 = samples
    .filter((s) => s.scenario === 'claim16' && s.system === 'raw SKIP LOCKED')
    .map((s) => Number(s.extra!.claimP99Ms));
  if (rawClaimP99.length) {
    const r = summarize(rawClaimP99);
    lines.push(
      `ref   claim p99, 16 claimers, raw SKIP LOCKED loop (claim ${BATCH}, same server): median ${round(r.median, 2)} ms (${round(r.min, 2)}–${round(r.max, 2)})`,
    );
  }
  check(
    'reaper, 100,000 expired leases',
    samples.filter((s) => s.scenario === 'reaper').map((s) => s.seconds),
    3,
    'max',
    's',
    2,
  );
  check('consumer peak RSS (100,000 jobs)', extra('rss', 'peakRssMb'), 150, 'max', 'MB', 1);
  return lines;
}

/** Median CPU per job by system: the main drain's samples, and the consumer's JavaScript alone. */
function cpuTable(): Array<{ system: string; db: number | undefined; node: number }> {
  const bySystem = new Map<string, Sample[]>();
  for (const s of samples) {
    if ((s.scenario !== 'main' && s.scenario !== 'consumer-js') || s.extra?.nodeCpuUsPerJob === undefined)
      continue;
    bySystem.set(s.system, [...(bySystem.get(s.system) ?? []), s]);
  }
  return [...bySystem].map(([system, xs]) => ({
    system,
    // The in-memory diagnostic has no database: no figure, rather than a 0 that reads as one.
    db:
      xs[0]!.extra!.dbCpuUsPerJob === undefined
        ? undefined
        : summarize(xs.map((s) => Number(s.extra!.dbCpuUsPerJob))).median,
    node: summarize(xs.map((s) => Number(s.extra!.nodeCpuUsPerJob))).median,
  }));
}

/** The same figures as Markdown, for docs/BENCHMARKS.md (written beside the JSON). */
function markdown(): string {
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const lines = [
    '| scenario | system | workers | jobs | median jobs/s | min–max | runs |',
    '|---|---|--:|--:|--:|--:|--:|',
  ];
  for (const r of table()) {
    lines.push(
      `| ${r.scenario} | ${r.system} | ${r.workers ?? ''} | ${r.jobs.toLocaleString('en-US')} | ${fmt(r.rate.median)} | ${fmt(r.rate.min)}–${fmt(r.rate.max)} | ${r.rate.n} |`,
    );
  }
  lines.push('', '| target | per round | median | target | |', '|---|---|--:|--:|---|');
  for (const t of targets()) {
    const m = summarize(t.ratios).median;
    const ok = t.kind === 'min' ? m >= t.target : m <= t.target;
    lines.push(
      `| ${t.what} | ${t.ratios.map((x) => x.toFixed(2)).join(' / ')} | ${m.toFixed(2)} | ${t.kind === 'min' ? '≥' : '≤'} ${t.target} | ${ok ? 'met' : '**missed**'} |`,
    );
  }
  const cpuRows = cpuTable();
  if (cpuRows.length) {
    lines.push(
      '',
      '| system (main drain) | PostgreSQL CPU µs/job | Node CPU µs/job | total |',
      '|---|--:|--:|--:|',
    );
    for (const c of cpuRows)
      lines.push(
        `| ${c.system} | ${c.db?.toFixed(1) ?? '—'} | ${c.node.toFixed(1)} | ${c.db === undefined ? '' : (c.db + c.node).toFixed(1)} |`,
      );
  }
  lines.push('', ...absoluteTargets().map((l) => `- ${l}`));
  return `${lines.join('\n')}\n`;
}

function printReport(): string {
  const out: string[] = [];
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  out.push('', 'scenario   system                              workers     jobs   median jobs/s  (min–max)');
  for (const r of table()) {
    out.push(
      `${r.scenario.padEnd(10)} ${r.system.padEnd(35)} ${String(r.workers ?? '').padStart(7)} ${String(r.jobs).padStart(8)} ${fmt(r.rate.median).padStart(14)}  (${fmt(r.rate.min)}–${fmt(r.rate.max)}) n=${r.rate.n}`,
    );
  }
  const cpuRows = cpuTable();
  if (cpuRows.length) {
    out.push('', 'CPU per job in the main drain (median µs; PostgreSQL server + this Node process)');
    for (const c of cpuRows)
      out.push(
        `  ${c.system.padEnd(35)} db ${(c.db?.toFixed(1) ?? '—').padStart(6)}  node ${c.node.toFixed(1).padStart(6)}  total ${(c.db === undefined ? '' : (c.db + c.node).toFixed(1)).padStart(6)}`,
      );
  }
  out.push('', 'targets (ratios per round, judged on the median)');
  for (const t of targets()) {
    const m = summarize(t.ratios).median;
    const ok = t.kind === 'min' ? m >= t.target : m <= t.target;
    out.push(
      `${ok ? 'MET ' : 'MISS'}  ${t.what}: ${t.ratios.map((x) => x.toFixed(2)).join(' / ')} → median ${m.toFixed(2)} (target ${t.kind === 'min' ? '≥' : '≤'} ${t.target})`,
    );
  }
  out.push(...absoluteTargets());
  if (notes.length) out.push('', 'notes:', ...notes.map((n) => `  ${n}`));
  const text = out.join('\n');
  log(text);
  return text;
}

// ---------------------------------------------------------------- main
async function main(): Promise<void> {
  ensureBenchDeps();
  process.env.DATABASE_URL ??= ADMIN_URL; // the handlers' module-scope defaults read it at import
  handlers = await import('./lib/handlers.ts');
  const leftovers = await dropLeftovers();
  if (leftovers.length) log(`dropped leftover databases: ${leftovers.join(', ')}`);

  const started = new Date();
  const machine = {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    ramGb: round(totalmem() / 1024 ** 3, 1),
    node: process.version,
    postgres: await serverVersion(),
  };
  const command = `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
  log(`durable-task-engine bench — ${started.toISOString()} — ${command}`);
  log(
    `machine: ${machine.nproc} × ${machine.cpu}, ${machine.ramGb} GB RAM, Node ${machine.node}, PostgreSQL ${machine.postgres}`,
  );
  log(
    `main: ${JOBS.toLocaleString('en-US')} no-op jobs, ${WORKERS} workers, batch ${BATCH} (tuned: ${TUNED_BATCH}), ${ROUNDS} interleaved round(s)`,
  );

  const main = QUICK
    ? [
        'raw',
        'raw-tuned',
        'engine-fn',
        'engine-fn-nocount',
        'consumer',
        'consumer-tuned',
        'graphile',
        'pgboss',
        'enqueue-unnest',
      ]
    : [
        'raw',
        'raw-tuned',
        'engine-fn',
        'engine-fn-nocount',
        'engine-fn-advisory',
        'engine-fn-cold',
        'consumer',
        'consumer-tuned',
        'consumer-nocount',
        'graphile',
        'pgboss',
        'enqueue-unnest',
      ];
  if (wants('main')) await interleaved('main', main, JOBS, WORKERS, ROUNDS);
  if (wants('consumer-js')) {
    log("consumer-js: the consumer handler's own JavaScript per job, on an in-memory database");
    for (let round = 1; round <= ROUNDS; round++) await consumerJs(round);
  }

  if (wants('scale')) {
    log('scale (b): 20,000 and 100,000 jobs at 1, 4 and 8 workers');
    for (const jobs of [20_000, 100_000]) {
      for (const workers of [1, 4, 8]) {
        if (jobs === JOBS && workers === WORKERS) continue; // that is the main scenario
        await interleaved(`scale`, ['raw', 'consumer', 'graphile', 'pgboss'], jobs, workers, ROUNDS);
      }
    }
  }
  if (wants('trickle')) {
    log('trickle (c): 50 jobs/s for 20 s, one live consumer');
    for (let round = 1; round <= ROUNDS; round++) await trickle(round);
  }
  if (wants('deployed-trickle')) {
    log(
      'deployed-shape trickle: 60 s schedule, wake on enqueue, 20 jobs/s for 30 s, then 20 jobs delayed 5 s',
    );
    for (let round = 1; round <= ROUNDS; round++) await deployedTrickle(round);
  }
  if (wants('claim')) {
    log('claim latency (d): 16 claimers over 100,000 jobs');
    for (let round = 1; round <= ROUNDS; round++) {
      await claimLatency(round, false);
      await claimLatency(round, true);
      await rawClaimLatency(round);
    }
  }
  if (wants('reaper')) {
    log('reaper (e): 100,000 expired leases');
    for (let round = 1; round <= ROUNDS; round++) await reaper(round);
  }
  if (wants('bigtable')) {
    log(`big table (f): ${BIG_ROWS.toLocaleString('en-US')} finished rows vs empty`);
    await bigTable(ROUNDS);
  }
  if (wants('rss')) {
    log('peak RSS (g): one consumer process, 100,000 jobs');
    for (let round = 1; round <= ROUNDS; round++) await peakRss(round);
  }

  const text = printReport();
  mkdirSync(RESULTS, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const file = join(RESULTS, `${QUICK ? 'quick' : 'full'}-${stamp}.json`);
  const benchPkg = JSON.parse(readFileSync(join(HERE, 'package.json'), 'utf8')) as { dependencies: unknown };
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        date: started.toISOString(),
        durationSeconds: (Date.now() - started.getTime()) / 1000,
        command,
        machine,
        settings: { jobs: JOBS, workers: WORKERS, batch: BATCH, tuned: TUNED, rounds: ROUNDS, quick: QUICK },
        peers: { dependencies: benchPkg.dependencies, configs: peerConfigs },
        rows: table(),
        cpu: cpuTable(),
        ratios: targets(),
        samples,
        notes,
        report: text,
      },
      null,
      2,
    )}\n`,
  );
  writeFileSync(file.replace(/\.json$/, '.md'), markdown());
  log(`\nresults: ${file} (${((Date.now() - started.getTime()) / 1000).toFixed(0)} s)`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
