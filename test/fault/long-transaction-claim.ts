/**
 * Where a held snapshot's cost goes in the claim, and what bounds it: a scratch measurement on
 * a throwaway cluster (never the shared server: a held snapshot there would hold back vacuum
 * for every schema in the database). Not part of any suite; the figures are in
 * docs/RELIABILITY.md ("A long transaction").
 *
 *   npx tsx test/fault/long-transaction-claim.ts [jobs claimed while held, default 50000]
 *
 * 1. baseline: a backlog of 5,000, then CHURN jobs claimed in batches of 50 through jobs_claim
 *    (each call completing the previous batch, 50 new jobs enqueued per claim); the claim's read
 *    (the `taken` select without its row locks) explained with BUFFERS.
 * 2. held: the same with a REPEATABLE READ transaction opened before the churn; the full claim
 *    read against a read that starts at the last claimed key (a consumer-side hint).
 * 3. released: the same read 20 claims after COMMIT (the claims walk the dead entries once and
 *    mark them dead in the index), and after VACUUM.
 * 4. guard: the same churn with the reader logging in as a role with
 *    `idle_in_transaction_session_timeout = '3s'`: the server ends the forgotten transaction.
 */
import pg from 'pg';
import { loadMigrations, migrate } from '../../functions/engine/index.ts';
import { createDb, type PgDb } from '../../functions/platform/db.ts';
import { migrationsDir } from '../../functions/platform/paths.ts';
import { type Cluster, startCluster } from './cluster.ts';
import { markdownTable } from './vacuum.ts';

const CHURN = Number(process.argv[2] ?? 50_000);
const BATCH = 50;

/**
 * jobs_claim's `taken` read without FOR UPDATE SKIP LOCKED, prepared with a generic plan as the
 * function runs it (plan_cache_mode = force_generic_plan): a custom plan for the literal
 * LIMIT 50 would bitmap-scan and sort instead of walking the index in claim order.
 */
const FULL_READ = `SELECT j.id FROM jobs j
  WHERE j.status = 'queued' AND j.run_at <= now()
    AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = j.queue AND q.paused)
  ORDER BY j.priority DESC, j.run_at, j.id LIMIT $1`;

/** The same read from a key the caller already passed: same priority, after (run_at, id). */
const HINTED_READ = `SELECT j.id FROM jobs j
  WHERE j.status = 'queued' AND j.run_at <= now()
    AND j.priority = $2 AND (j.run_at, j.id) > ($3::timestamptz, $4::bigint)
    AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = j.queue AND q.paused)
  ORDER BY j.priority DESC, j.run_at, j.id LIMIT $1`;

interface Key {
  priority: number;
  runAt: string;
  id: string;
}

interface Explained {
  buffers: number;
  ms: number;
  plan: string;
}

async function explain(db: PgDb, sql: string, hint?: Key): Promise<Explained> {
  // One client (max: 1), so SET and PREPARE hold for the EXPLAIN that follows.
  await db.query('SET plan_cache_mode = force_generic_plan');
  await db.query('DEALLOCATE ALL');
  await db.query(`PREPARE claim_read AS ${sql}`);
  const args = hint ? `${BATCH}, ${hint.priority}, '${hint.runAt}', ${hint.id}` : String(BATCH);
  const { rows } = await db.query<{ 'QUERY PLAN': Array<{ Plan: Record<string, unknown> }> }>(
    `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE claim_read(${args})`,
  );
  const plan = rows[0]!['QUERY PLAN'][0]!.Plan;
  const names: string[] = [];
  const walk = (n: Record<string, unknown>) => {
    names.push(`${n['Node Type']}${n['Index Name'] ? ` ${n['Index Name']}` : ''}`);
    for (const c of (n.Plans as Array<Record<string, unknown>>) ?? []) walk(c);
  };
  walk(plan);
  return {
    buffers: Number(plan['Shared Hit Blocks']) + Number(plan['Shared Read Blocks']),
    ms: Number(plan['Actual Total Time']),
    plan: names.join(' > '),
  };
}

async function fill(db: PgDb, n: number): Promise<void> {
  await db.query(
    `INSERT INTO jobs (task_type, payload)
     SELECT 'fault.work', jsonb_build_object('seq', g, 'ms', 0) FROM generate_series(1, $1::int) g`,
    [n],
  );
}

/** Claims `n` jobs in batches (completing each batch in the next call), 50 enqueued per claim. */
async function churn(db: PgDb, n: number): Promise<{ msFirst: number; msLast: number; last: Key }> {
  let completions = '[]';
  let claimed = 0;
  const times: number[] = [];
  let last: Key | undefined;
  while (claimed < n) {
    const t0 = performance.now();
    const { rows } = await db.query<{ o_claimed: Array<{ id: string; leaseToken: string }> }>(
      `SELECT o_claimed FROM jobs_claim('scratch', $1, 30, NULL, false, $2)`,
      [BATCH, completions],
    );
    times.push(performance.now() - t0);
    const jobs = rows[0]!.o_claimed;
    claimed += jobs.length;
    completions = JSON.stringify(jobs.map((j) => ({ id: j.id, token: j.leaseToken, result: {} })));
    if (jobs.length > 0) {
      const k = await db.query<{ priority: number; run_at: string; id: string }>(
        `SELECT priority, run_at::text, id::text FROM jobs WHERE id = $1`,
        [jobs[jobs.length - 1]!.id],
      );
      last = { priority: k.rows[0]!.priority, runAt: k.rows[0]!.run_at, id: k.rows[0]!.id };
    }
    await fill(db, BATCH);
  }
  await db.query('SELECT jobs_complete($1)', [completions]);
  const tenth = Math.max(1, Math.floor(times.length / 10));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { msFirst: mean(times.slice(0, tenth)), msLast: mean(times.slice(-tenth)), last: last! };
}

async function database(cluster: Cluster, name: string): Promise<PgDb> {
  const db = createDb({ connectionString: await cluster.createDatabase(name), max: 1 });
  await migrate(db, loadMigrations(migrationsDir()));
  await fill(db, 5000);
  return db;
}

/** The server's message that ended the reader's connection, if one did. */
let readerEnded = 'still open';

async function openSnapshot(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  c.on('error', (e) => {
    if (readerEnded === 'still open') readerEnded = e.message;
  });
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  await c.query('SELECT count(*) FROM jobs');
  return c;
}

const cluster = await startCluster({ autovacuum_naptime: "'10s'" });
const rows: string[][] = [];
const row = (run: string, read: string, e: Explained, churnMs?: { msFirst: number; msLast: number }) =>
  rows.push([
    run,
    read,
    String(e.buffers),
    e.ms.toFixed(2),
    churnMs ? `${churnMs.msFirst.toFixed(2)} -> ${churnMs.msLast.toFixed(2)}` : '',
    e.plan,
  ]);
try {
  // 1. baseline
  const a = await database(cluster, 'baseline');
  const ca = await churn(a, CHURN);
  row('baseline', 'full', await explain(a, FULL_READ), ca);
  row('baseline', 'from hint', await explain(a, HINTED_READ, ca.last));
  await a.end();

  // 2. held
  const b = await database(cluster, 'held');
  const reader = await openSnapshot(cluster.url('held'));
  const cb = await churn(b, CHURN);
  row('held', 'full', await explain(b, FULL_READ), cb);
  row('held', 'from hint', await explain(b, HINTED_READ, cb.last));
  const age = await b.query<{ age: string }>(
    `SELECT max(age(backend_xmin))::text AS age FROM pg_stat_activity WHERE datname = 'held'`,
  );
  // 3. released
  await reader.query('COMMIT');
  await reader.end();
  // The first reads after the COMMIT can still see the old horizon: a backend recomputes it when
  // its snapshot's xmin moves, and hints dead index entries only then. The engine's claims move
  // it at once; here 20 more claims play that part.
  await churn(b, 20 * BATCH);
  row('released', 'full, after 20 claims', await explain(b, FULL_READ));
  await b.query('VACUUM jobs');
  row('released', 'full, after VACUUM', await explain(b, FULL_READ));
  await b.end();

  // 4. guard: the forgotten transaction is ended by the server after 3 s idle.
  const c = await database(cluster, 'guarded');
  await c.query(`CREATE ROLE analytics LOGIN`);
  await c.query(`GRANT SELECT ON jobs TO analytics`);
  await c.query(`ALTER ROLE analytics SET idle_in_transaction_session_timeout = '3s'`);
  const guarded = await openSnapshot(
    cluster.url('guarded').replace('postgres://postgres@', 'postgres://analytics@'),
  );
  const cc = await churn(c, CHURN);
  row('guarded (3 s)', 'full', await explain(c, FULL_READ), cc);
  await guarded.end().catch(() => {});
  await c.end();

  console.log(
    `\n${CHURN} jobs claimed in batches of ${BATCH} after a backlog of 5,000; held snapshot xmin age ${age.rows[0]?.age} xids\n` +
      `guarded reader: ${readerEnded}\n\n` +
      markdownTable(
        ['run', 'claim read', 'buffers', 'ms', 'jobs_claim ms first -> last tenth', 'plan'],
        rows,
      ),
  );
} finally {
  cluster.destroy();
}
