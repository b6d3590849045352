import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createHandler as createApi } from '../../functions/api.ts';
import { type EnqueueRequest, enqueueMany, loadMigrations, migrate } from '../../functions/engine/index.ts';
import { createDb, type PgDb } from '../../functions/platform/db.ts';
import { migrationsDir } from '../../functions/platform/paths.ts';
import { createHandler as createReaper, type ReaperHandler } from '../../functions/reaper.ts';
import { apiEvent, fakeContext, logSink } from '../helpers/lambda.ts';
import { type CheckResult, checkInvariants } from './checker.ts';
import type { Cluster } from './cluster.ts';
import { History, type HistoryEvent } from './history.ts';
import { type FaultProxy, startProxy } from './proxy.ts';
import { faultRegistry } from './tasks.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const WORKER = join(here, 'worker.ts');
// One bundle per process: two runs (or two test files) never overwrite each other's worker.
const BUNDLE_DIR = join(here, '..', '..', 'node_modules', '.cache', 'dte-fault', String(process.pid));
const BUNDLE = join(BUNDLE_DIR, 'worker.mjs');

let bundled: Promise<string> | undefined;

/** Removes bundles left by processes that are gone (vitest ends its forks without an 'exit' event). */
function pruneStaleBundles(): void {
  const root = dirname(BUNDLE_DIR);
  if (!existsSync(root)) return;
  for (const entry of readdirSync(root)) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch {
      rmSync(join(root, entry), { recursive: true, force: true });
    }
  }
}
/**
 * The worker bundled once with esbuild (dependencies stay external): a consumer process then
 * starts in about 0.5 s instead of the 5-20 s that compiling through tsx took on two busy cores.
 */
export function workerEntry(): Promise<string> {
  bundled ??= (async () => {
    pruneStaleBundles();
    const esbuild = await import('esbuild');
    await esbuild.build({
      entryPoints: [WORKER],
      outfile: BUNDLE,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      logLevel: 'error',
    });
    process.once('exit', () => rmSync(BUNDLE_DIR, { recursive: true, force: true }));
    return BUNDLE;
  })();
  return bundled;
}

/** Consumer settings every scenario starts from: short leases so recovery fits in seconds. */
export const BASE_ENV: Record<string, string> = {
  LOG_LEVEL: 'error',
  LEASE_SECONDS: '2',
  BATCH_SIZE: '10',
  CONSUMER_CONCURRENCY: '5',
  CONSUMER_IDLE_EXIT_MS: '300',
  CONSUMER_POLL_MS: '50',
  DB_QUERY_TIMEOUT_MS: '3000',
  DB_CONNECT_TIMEOUT_MS: '2000',
  BACKOFF_BASE_SECONDS: '0.2',
  MAX_BACKOFF_SECONDS: '1',
  INVOCATION_MS: '8000',
};

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface SummaryRow {
  scenario: string;
  faults: string;
  jobs: number;
  lost: number;
  duplicateCompletions: number;
  fenced: number;
  recovered: number;
  durationS: number;
  invariants: string;
  ranMoreThanOnce: string;
}

export interface Worker {
  name: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  stderr: string[];
}

let counter = 0;

/** True when a database error proves the statement never ran: no connection was made. */
export function neverReachedServer(err: unknown): boolean {
  for (
    let e = err as { code?: string; message?: string; cause?: unknown } | undefined;
    e;
    e = e.cause as typeof e
  ) {
    if (e.code === 'ECONNREFUSED' || e.code === '57P03') return true;
    if (typeof e.message === 'string' && e.message.includes('timeout exceeded when trying to connect'))
      return true;
  }
  return false;
}

/**
 * One scenario: a fresh database in the fault cluster, a proxy in front of it, consumer
 * processes, reapers, the history, and the checker at the end.
 */
export class Scenario {
  readonly history = new History();
  readonly workers = new Map<string, Worker>();
  readonly started = Date.now();
  faults: string[] = [];
  private listeners = new Set<(e: HistoryEvent, w: string) => void>();
  private reapers: Array<{ handler: ReaperHandler; db: PgDb }> = [];
  private seq = 0;
  private stopping = false;
  private respawn = false;

  private constructor(
    readonly name: string,
    readonly cluster: Cluster,
    readonly database: string,
    readonly db: PgDb,
    readonly proxy: FaultProxy,
    readonly env: Record<string, string>,
  ) {}

  private entry = '';

  static async start(
    name: string,
    cluster: Cluster,
    options: { env?: Record<string, string>; target?: { port: number } } = {},
  ): Promise<Scenario> {
    const entry = await workerEntry();
    const database = `s${++counter}_${name.replace(/[^a-z0-9]+/gi, '_').toLowerCase()}`.slice(0, 60);
    const url = await cluster.createDatabase(database);
    const db = createDb({ connectionString: url, applicationName: 'dte-fault-harness', max: 4 });
    await migrate(db, loadMigrations(migrationsDir()));
    const proxy = await startProxy(options.target ?? { port: cluster.port });
    const scenario = new Scenario(name, cluster, database, db, proxy, { ...BASE_ENV, ...options.env });
    scenario.entry = entry;
    return scenario;
  }

  /** Keep a given number of consumers alive: a killed one is replaced (the scheduler invokes again). */
  set respawnKilled(on: boolean) {
    this.respawn = on;
  }

  onEvent(fn: (e: HistoryEvent, worker: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Starts a consumer process running LOOPS consumer loops through the proxy. */
  spawnWorker(name: string, env: Record<string, string> = {}): Worker {
    const child = spawn(process.execPath, [this.entry], {
      env: {
        ...process.env,
        ...this.env,
        DATABASE_URL: this.proxy.url(this.database),
        WORKER_NAME: name,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stderr: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const e = this.history.addLine(line);
      if (e) for (const fn of this.listeners) fn(e, name);
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      stderr.push(line);
      if (stderr.length > 50) stderr.shift();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const w: Worker = { name, child, exited, stderr };
    this.workers.set(name, w);
    exited.then(() => {
      if (this.respawn && !this.stopping && this.workers.get(name) === w) {
        this.spawnWorker(name, env);
      }
    });
    return w;
  }

  spawnWorkers(n: number, env: Record<string, string> = {}, prefix = 'c'): Worker[] {
    return Array.from({ length: n }, (_, i) => this.spawnWorker(`${prefix}${i + 1}`, env));
  }

  /** Waits until every worker named has finished one invocation (it is up and polling). */
  async ready(names: string[] = [...this.workers.keys()], timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const up = () => new Set(this.history.of('invocation').map((e) => e.w));
    while (!names.every((n) => up().has(n))) {
      if (Date.now() > deadline) throw new Error(`workers not ready: ${this.lastStderr()}`);
      await sleep(100);
    }
  }

  /** Waits until a worker reports a claim with at least one job, then returns its name. */
  nextClaim(filter: (worker: string) => boolean = () => true, timeoutMs = 30_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error('no claim seen'));
      }, timeoutMs);
      const off = this.onEvent((e, w) => {
        if (e.op === 'claim' && e.jobs.length > 0 && filter(w)) {
          clearTimeout(timer);
          off();
          resolve(w);
        }
      });
    });
  }

  nextSeq(): number {
    return ++this.seq;
  }

  /**
   * Enqueues through the real api handler (its own connection, straight to the database) in
   * batches of `batch`, as fast as it answers, until `stop()`. 201 is an acknowledgement; 503
   * means "not stored, retry" (recorded as unknown: a lost commit reply is possible); any
   * other status is counted in `unexpected`.
   */
  apiEnqueueLoop(
    batch = 20,
    paceMs = 0,
  ): {
    stop(): Promise<void>;
    statuses: Map<number, number>;
    okTimes: number[];
    retryAfterMissing: number;
  } {
    const api = createApi({
      env: {
        LOG_LEVEL: 'error',
        DATABASE_URL: this.cluster.url(this.database),
        DB_QUERY_TIMEOUT_MS: '3000',
        DB_CONNECT_TIMEOUT_MS: '2000',
      },
      registry: faultRegistry(),
      logStream: logSink(),
    });
    const statuses = new Map<number, number>();
    const okTimes: number[] = [];
    let retryAfterMissing = 0;
    let running = true;
    const loop = (async () => {
      while (running) {
        const seqs = Array.from({ length: batch }, () => this.nextSeq());
        const body = { jobs: seqs.map((seq) => ({ type: 'fault.work', payload: { seq, ms: 20 } })) };
        const res = (await api(apiEvent('POST', '/jobs/batch', body), fakeContext(10_000, 'fault-api'))) as {
          statusCode: number;
          body: string;
          headers?: Record<string, string>;
        };
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        if (res.statusCode === 201) {
          const ids = (JSON.parse(res.body) as { jobs: Array<{ id: string }> }).jobs.map((j) => j.id);
          this.history.add({ op: 'enqueue', t: Date.now(), seqs, ids });
          okTimes.push(Date.now());
          if (paceMs > 0) await sleep(paceMs);
        } else {
          this.history.add({ op: 'enqueue-unknown', t: Date.now(), seqs, error: `HTTP ${res.statusCode}` });
          if (res.statusCode === 503 && !res.headers?.['Retry-After']) retryAfterMissing++;
          await sleep(100);
        }
      }
    })();
    return {
      statuses,
      okTimes,
      get retryAfterMissing() {
        return retryAfterMissing;
      },
      async stop() {
        running = false;
        await loop;
      },
    };
  }

  /** A job request of the fault suite, numbered so the checker can tell who enqueued what. */
  job(payload: Record<string, unknown> = {}, extra: Partial<EnqueueRequest> = {}): EnqueueRequest {
    return { type: 'fault.work', payload: { seq: ++this.seq, ms: 20, ...payload }, ...extra };
  }

  /** Enqueues through the engine directly (not through the proxy), recording acknowledgements. */
  async enqueue(requests: EnqueueRequest[], batch = 200): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < requests.length; i += batch) {
      const chunk = requests.slice(i, i + batch);
      const seqs = chunk.map((r) => (r.payload as { seq: number }).seq);
      try {
        const res = await enqueueMany(this.db, chunk);
        const got = res.map((r) => r.job.id);
        ids.push(...got);
        this.history.add({ op: 'enqueue', t: Date.now(), seqs, ids: got });
      } catch (err) {
        this.history.add({ op: 'enqueue-unknown', t: Date.now(), seqs, error: String(err) });
        throw err;
      }
    }
    return ids;
  }

  async enqueueWork(n: number, payload: Record<string, unknown> = {}): Promise<string[]> {
    return this.enqueue(Array.from({ length: n }, () => this.job(payload)));
  }

  /** `count` reaper handlers, each with its own connection straight to the database. */
  private reaper(index: number): { handler: ReaperHandler; db: PgDb } {
    while (this.reapers.length <= index) {
      const db = createDb({
        connectionString: this.cluster.url(this.database),
        applicationName: 'dte-fault-reaper',
        max: 1,
        queryTimeoutMs: 5000,
        connectTimeoutMs: 2000,
      });
      const handler = createReaper({ env: { LOG_LEVEL: 'error' }, db, logStream: logSink() });
      this.reapers.push({ handler, db });
    }
    return this.reapers[index]!;
  }

  /** One reaper invocation, its outcome recorded in the history. */
  async reap(index = 0): Promise<void> {
    try {
      const s = await this.reaper(index).handler({}, fakeContext(10_000, `fault-reaper-${index}`));
      if (s.recovered > 0 || index >= 0)
        this.history.add({
          op: 'reap',
          t: Date.now(),
          recovered: s.recovered,
          requeued: s.requeued,
          failed: s.failed,
        });
    } catch (err) {
      // A reaper that never reached the server (refused, or the server starting up) ran
      // nothing; any other failure may have committed before the reply was lost.
      if (!neverReachedServer(err))
        this.history.add({ op: 'reap-unknown', t: Date.now(), error: String(err) });
    }
  }

  /** Reaps every `intervalMs` until the returned stop function is called. */
  reapEvery(intervalMs: number): () => Promise<void> {
    let running = true;
    const loop = (async () => {
      while (running) {
        await this.reap();
        await sleep(intervalMs);
      }
    })();
    return async () => {
      running = false;
      await loop;
    };
  }

  async counts(): Promise<{ queued: number; running: number; completed: number; failed: number }> {
    const { rows } = await this.db.query<{ status: string; n: string }>(
      'SELECT status, count(*) AS n FROM jobs GROUP BY status',
    );
    const out = { queued: 0, running: 0, completed: 0, failed: 0 };
    for (const r of rows) out[r.status as keyof typeof out] = Number(r.n);
    return out;
  }

  /** Reaps and waits until no job is queued or running. */
  async drain(timeoutMs = 60_000, reapIntervalMs = 500): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.reap();
      const c = await this.counts();
      if (c.queued === 0 && c.running === 0) return;
      if (Date.now() > deadline)
        throw new Error(`drain timed out: ${JSON.stringify(c)}; stderr: ${this.lastStderr()}`);
      await sleep(reapIntervalMs);
    }
  }

  lastStderr(): string {
    return [...this.workers.values()]
      .flatMap((w) => w.stderr.slice(-5).map((l) => `${w.name}: ${l}`))
      .join('\n');
  }

  /** SIGTERM every worker (they stop claiming and release what they hold), SIGKILL stragglers. */
  async stopWorkers(): Promise<void> {
    this.stopping = true;
    const all = [...this.workers.values()];
    for (const w of all) if (w.child.exitCode === null) w.child.kill('SIGCONT');
    for (const w of all) if (w.child.exitCode === null) w.child.kill('SIGTERM');
    await Promise.race([Promise.all(all.map((w) => w.exited)), sleep(15_000)]);
    for (const w of all)
      if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await Promise.all(all.map((w) => w.exited));
  }

  check(): Promise<CheckResult> {
    return checkInvariants(this.db, this.history);
  }

  /** Stops everything and drops the scenario's database. */
  async close(): Promise<void> {
    await this.stopWorkers();
    // FAULT_HISTORY_DIR=/some/dir keeps each scenario's history for a post-mortem.
    if (process.env.FAULT_HISTORY_DIR) {
      const lines = this.history.events.map((e) => JSON.stringify(e)).join('\n');
      writeFileSync(join(process.env.FAULT_HISTORY_DIR, `${this.database}.jsonl`), `${lines}\n`);
    }
    await this.proxy.close();
    await Promise.all(this.reapers.map((r) => r.db.end().catch(() => {})));
    await this.db.end().catch(() => {});
  }

  row(result: CheckResult, extra: Partial<SummaryRow> = {}): SummaryRow {
    return {
      scenario: this.name,
      faults: this.faults.join(', '),
      jobs: result.stats.jobs,
      lost: result.stats.lost,
      duplicateCompletions: result.stats.duplicateCompletions,
      fenced: result.stats.fenced,
      recovered: result.stats.recovered,
      durationS: Math.round((Date.now() - this.started) / 100) / 10,
      invariants: result.ok ? 'I1-I7 hold' : `violated: ${result.failed.join(' ')}`,
      ranMoreThanOnce: `${(result.stats.ranMoreThanOnce * 100).toFixed(1)}%`,
      ...extra,
    };
  }
}

/** Appends a row to the suite's summary file (printed as a table when the suite ends). */
export function recordRow(row: SummaryRow): void {
  const file = process.env.FAULT_SUMMARY_FILE;
  if (file) appendFileSync(file, `${JSON.stringify(row)}\n`);
  console.log(formatTable([row]));
}

export function formatTable(rows: SummaryRow[]): string {
  const head = [
    'scenario',
    'faults injected',
    'jobs',
    'lost',
    'dup completions',
    'fenced',
    'recovered',
    'ran >1',
    'duration s',
    'invariants',
  ];
  const body = rows.map((r) => [
    r.scenario,
    r.faults,
    String(r.jobs),
    String(r.lost),
    String(r.duplicateCompletions),
    String(r.fenced),
    String(r.recovered),
    r.ranMoreThanOnce,
    r.durationS.toFixed(1),
    r.invariants,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
