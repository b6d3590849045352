/**
 * A consumer process for the fault suite: runs the real consumer handler in LOOPS concurrent
 * loops (each loop one Lambda container: its own connection, invocations back to back with a
 * Lambda-like context) and prints every engine statement's outcome as a history line on
 * stdout. The harness bundles it once with esbuild and runs it with node (`node --import tsx
 * test/fault/worker.ts` works too), with the environment below.
 *
 *   DATABASE_URL      where to connect (usually the fault proxy)
 *   WORKER_NAME       name in the history
 *   LOOPS             concurrent consumer loops in this process (default 1)
 *   INVOCATION_MS     each invocation's time limit (default 10000)
 *   CLOCK_SKEW_MS     added to this process's Date (the engine must use database time)
 *   UNFENCED=1        negative control: completions run without their lease_token predicate
 *   plus the consumer's own variables (LEASE_SECONDS, BATCH_SIZE, ...).
 */

import { Writable } from 'node:stream';

const RealDate = Date;
const realNow = () => RealDate.now();
const skew = Number(process.env.CLOCK_SKEW_MS ?? 0);
if (skew !== 0) {
  // Every `new Date()` and `Date.now()` in this process is off by `skew`; timers are not.
  class SkewedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(RealDate.now() + skew);
      else super(...(args as [string]));
    }
    static override now() {
      return RealDate.now() + skew;
    }
  }
  globalThis.Date = SkewedDate as DateConstructor;
}

const { createHandler } = await import('../../functions/consumer.ts');
const { createDb } = await import('../../functions/platform/db.ts');
const { faultRegistry } = await import('./tasks.ts');
const { fakeContext } = await import('../helpers/lambda.ts');
type Db = import('../../functions/engine/queryable.ts').Db;
type Queryable = import('../../functions/engine/queryable.ts').Queryable;

const name = process.env.WORKER_NAME ?? `w${process.pid}`;
const loops = Number(process.env.LOOPS ?? 1);
const invocationMs = Number(process.env.INVOCATION_MS ?? 10_000);
const unfenced = process.env.UNFENCED === '1';
const slowMs = Number(process.env.SLOW_OP_MS ?? 1000);

const emit = (e: Record<string, unknown>) => {
  process.stdout.write(`${JSON.stringify({ op: e.op, t: realNow(), w: name, ...e })}\n`);
};

/** The completion's fence in jobs_complete_batch's body: `AND d.lease_token = x.token`. */
const FENCE = /AND \w+\.lease_token = x\.token/;
type Kind = 'claim' | 'complete' | 'complete-claim' | 'fail' | 'release' | 'renew' | 'other';
/**
 * Claims and completions are calls of `jobs_claim_batch` (completes the leases of its parameters
 * 6 and 7, ids and tokens, then claims) and `jobs_complete_batch` (ids, tokens, results; issue
 * 21); fail, release and renew of migration 0008's.
 */
function kindOf(sql: string): Kind {
  if (sql.includes('FROM jobs_claim_batch(')) return 'complete-claim';
  if (sql.includes('jobs_complete_batch(')) return 'complete';
  // Since migration 0008 fail, release and renew are function calls too (jobs_fail(id, token,
  // ...), jobs_release(leases, ...), jobs_renew(leases)); the text forms are the older release's.
  if (sql.includes('jobs_fail(') || sql.includes('WITH decision AS')) return 'fail';
  if (sql.includes('jobs_release(') || sql.includes("SET status = 'queued', attempts = j.attempts - 1"))
    return 'release';
  if (sql.includes('jobs_renew(') || sql.includes('SET locked_at = now(), updated_at = now()'))
    return 'renew';
  return 'other';
}

/** The leases a claim (parameters 6 and 7) or a completion (1 and 2) completes, as [id, token]. */
function completionsOf(kind: Kind, values: readonly unknown[] | undefined): Array<[string, string]> {
  const at = kind === 'complete-claim' ? 5 : 0;
  const ids = (values?.[at] ?? []) as string[];
  const tokens = (values?.[at + 1] ?? []) as string[];
  return ids.map((id, i) => [String(id), String(tokens[i])]);
}

const leasesOf = (param: unknown): Array<[string, string]> =>
  (JSON.parse(String(param)) as Array<{ id: string; token: string }>).map((x) => [
    String(x.id),
    String(x.token),
  ]);

/**
 * Negative control: jobs_complete_batch's own statement, read from the database, with its fence
 * stripped and its parameter as $1. It answers one row with the completed ids as `ids`.
 */
let unfencedComplete: string | undefined;
async function unfencedCompletion(q: Queryable): Promise<string> {
  if (unfencedComplete) return unfencedComplete;
  const { rows } = await q.query<{ src: string }>(
    "SELECT prosrc AS src FROM pg_proc WHERE oid = to_regproc('jobs_complete_batch')",
  );
  const src = rows[0]?.src ?? '';
  const start = src.indexOf('WITH done AS');
  const end = src.indexOf(';', start);
  if (
    start < 0 ||
    end < 0 ||
    !FENCE.test(src) ||
    !src.includes('INTO v_ids') ||
    !src.includes('array_agg(') ||
    !src.includes('v_deleting :=')
  )
    throw new Error('negative control: the completion fence text changed');
  unfencedComplete = src
    .slice(start, end)
    .replace(new RegExp(FENCE.source, 'g'), '')
    .replace(/INTO v_ids\s*/, '')
    .replace(/array_agg\(([^)]*)\)/, 'array_agg($1) AS ids')
    // the queues whose retention is 'delete' (0022), a variable of the function
    .replaceAll('v_deleting', "ARRAY(SELECT q.name FROM queues q WHERE q.retention = 'delete')")
    .replaceAll('p_ids', '$1::bigint[]')
    .replaceAll('p_tokens', '$2::bigint[]')
    .replaceAll('p_results', '$3::jsonb[]');
  return unfencedComplete;
}

/** Runs a claim or completion with the fence off: the stripped completion, then the claim alone. */
async function runUnfenced<R>(q: Queryable, kind: Kind, values: readonly unknown[] | undefined) {
  const at = kind === 'complete-claim' ? 5 : 0;
  const completions = (values ?? []).slice(at, at + 3);
  const sql = await unfencedCompletion(q);
  const done =
    ((completions[0] ?? []) as unknown[]).length === 0
      ? null
      : (await q.query<{ ids: string[] | null }>(sql, completions)).rows[0]!.ids;
  if (kind === 'complete') return { rows: [{ ids: done }] as R[], rowCount: 1 };
  const claimValues = [...(values ?? [])];
  claimValues[5] = [];
  claimValues[6] = [];
  claimValues[7] = [];
  const res = await q.query<Record<string, unknown>>(
    'SELECT o_ids, o_queues, o_types, o_payloads, o_attempts, o_max_attempts, o_tokens, o_lease_seconds FROM jobs_claim_batch($1, $2, $3, $4, $5, $6, $7, $8)',
    claimValues,
  );
  return { rows: [{ ...res.rows[0]!, o_completed: done }] as R[], rowCount: 1 };
}

/** Records every engine statement's outcome; in the negative control, strips the completion's fence. */
function recording(q: Queryable): Queryable {
  return {
    async query<R>(text: string, values?: readonly unknown[]) {
      const kind = kindOf(text);
      const t0 = realNow();
      try {
        const res =
          unfenced && (kind === 'complete' || kind === 'complete-claim')
            ? await runUnfenced<R>(q, kind, values)
            : await q.query<R>(text, values);
        const ms = realNow() - t0;
        const rows = res.rows as Array<Record<string, unknown>>;
        if (kind === 'complete-claim') {
          // One call completing the previous batch (possibly none) and claiming the next.
          // Claimed jobs come back as parallel arrays; completed ids as an array.
          const row = rows[0] as {
            o_ids: string[] | null;
            o_tokens: string[] | null;
            o_completed: string[] | null;
          };
          const done = new Set(row.o_completed ?? []);
          const leases = completionsOf(kind, values);
          if (leases.length > 0)
            emit({
              op: 'complete',
              ms,
              ok: leases.filter(([id]) => done.has(id)),
              fenced: leases.filter(([id]) => !done.has(id)),
            });
          if (row.o_ids && row.o_ids.length > 0)
            emit({ op: 'claim', ms, jobs: row.o_ids.map((id, i) => [String(id), String(row.o_tokens![i])]) });
        } else if (kind === 'complete') {
          const done = new Set((rows[0] as { ids: string[] | null }).ids ?? []);
          const leases = completionsOf(kind, values);
          emit({
            op: 'complete',
            ms,
            ok: leases.filter(([id]) => done.has(id)),
            fenced: leases.filter(([id]) => !done.has(id)),
          });
        } else if (kind === 'fail') {
          const row = rows[0];
          emit({
            op: 'fail',
            ms,
            lease: [String(values?.[0]), String(values?.[1])],
            outcome: row ? String(row.status) : 'fenced',
          });
        } else if (kind === 'renew' && process.env.FAULT_TRACE_RENEW === '1') {
          const leases = leasesOf(values?.[0]);
          emit({ op: 'renew', ms, asked: leases.length, renewed: rows.length });
        } else if (kind === 'release') {
          // A job out of deadline releases ends `failed` (jobs_release, 0008): the checker counts
          // it among the failed jobs, so it is neither released nor fenced here.
          const done = new Set(rows.map((r) => String(r.id)));
          const failed = new Set(rows.filter((r) => r.status === 'failed').map((r) => String(r.id)));
          const leases = leasesOf(values?.[0]);
          emit({
            op: 'release',
            ms,
            ok: leases.filter(([id]) => done.has(id) && !failed.has(id)),
            fenced: leases.filter(([id]) => !done.has(id)),
            unknown: [],
          });
        }
        if (ms >= slowMs) emit({ op: 'slow', ms, kind });
        return res;
      } catch (err) {
        const ms = realNow() - t0;
        const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        if (kind === 'complete' || kind === 'complete-claim')
          emit({ op: 'complete-unknown', ms, leases: completionsOf(kind, values), error });
        else if (kind === 'fail')
          emit({ op: 'fail', ms, lease: [String(values?.[0]), String(values?.[1])], outcome: 'unknown' });
        else if (kind === 'release')
          emit({ op: 'release', ms, ok: [], fenced: [], unknown: leasesOf(values?.[0]) });
        emit({ op: 'db-error', ms, kind, error });
        throw err;
      }
    },
  };
}

function recordingDb(db: Db): Db {
  const q = recording(db);
  return {
    query: q.query,
    transaction: (fn) => db.transaction((tx) => fn(recording(tx))),
    end: () => db.end(),
  };
}

const stop = new AbortController();
process.on('SIGTERM', () => stop.abort());
process.on('SIGINT', () => stop.abort());

const registry = faultRegistry(name);
const quiet = new Writable({
  write(chunk, _enc, cb) {
    if (process.env.FAULT_DEBUG === '1') process.stderr.write(chunk);
    cb();
  },
});
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function loop(index: number): Promise<void> {
  const db = createDb({
    connectionString: process.env.DATABASE_URL,
    applicationName: 'dte-fault-consumer',
    queryTimeoutMs: Number(process.env.DB_QUERY_TIMEOUT_MS ?? 15_000),
    connectTimeoutMs: Number(process.env.DB_CONNECT_TIMEOUT_MS ?? 5_000),
    max: 1,
  });
  const handler = createHandler({
    env: { LOG_LEVEL: 'error', ...process.env },
    db: recordingDb(db),
    registry,
    logStream: quiet,
    stopSignal: stop.signal,
  });
  let failures = 0;
  while (!stop.signal.aborted) {
    const t0 = realNow();
    let summary: { exitReason: string; claimed: number; completed: number; lost: number };
    try {
      summary = await handler({}, fakeContext(invocationMs, `fault-${name}-${index}`));
    } catch (err) {
      // The handler itself failed: on AWS, middy's timeout (the invocation ran into its
      // deadline) or a crash. Lambda would end the invocation; the loop carries on like the
      // next scheduled one.
      const e = err as Error;
      summary = {
        exitReason: `threw ${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`,
        claimed: 0,
        completed: 0,
        lost: 0,
      };
    }
    emit({
      op: 'invocation',
      ms: realNow() - t0,
      exitReason: summary.exitReason,
      claimed: summary.claimed,
      completed: summary.completed,
      lost: summary.lost,
    });
    if (
      summary.exitReason !== 'idle' &&
      summary.exitReason !== 'deadline' &&
      summary.exitReason !== 'stopped'
    ) {
      // The scheduler's retry after a failed invocation, with full jitter (AWS Architecture Blog,
      // "Exponential Backoff And Jitter"): 40 loops losing the database together do not come
      // back in step.
      failures++;
      await sleep(Math.random() * Math.min(2000, 100 * 2 ** Math.min(failures, 10)));
    } else {
      failures = 0;
      if (summary.claimed === 0) await sleep(50);
    }
  }
  await db.end().catch(() => {});
}

await Promise.all(Array.from({ length: loops }, (_, i) => loop(i)));
process.exit(0);
