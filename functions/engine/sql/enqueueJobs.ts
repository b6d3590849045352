import type { Queryable } from '../queryable.ts';
import { JOB_COLUMNS, type JobRow } from '../types.ts';

export interface EnqueueRow {
  queue: string;
  type: string;
  payload: unknown;
  priority: number;
  /** ISO timestamp; when null, now() + delay (database time). */
  run_at: string | null;
  delay: number;
  max_attempts: number;
  key: string | null;
  hash: string | null;
}

/** What an insert returns per row: the rest of the job is what was sent, or a column default. */
export interface InsertedRow {
  id: string;
  idempotency_key: string | null;
  lease_seconds: number;
  /** Epoch milliseconds: parsing timestamptz text into Dates was a third of enqueueMany's client time. */
  run_at_ms: number;
  created_at_ms: number;
}

/**
 * A batch as columns: every row's type as text[], the payloads as one JSON array text, and each
 * field most batches leave at its default as an array only when some row sets it (null
 * elements where a row keeps the default), else null. Read as json_to_recordset of one json
 * document, a 20,000-row batch took 52-64 ms to read; as these columns 11-13 ms (migration 0007).
 */
interface EnqueueColumns {
  types: string[];
  payloads: string;
  queues: Array<string | null> | null;
  priorities: Array<number | null> | null;
  runAts: Array<string | null> | null;
  delays: Array<number | null> | null;
  maxAttempts: Array<number | null> | null;
  keys: Array<string | null> | null;
  hashes: Array<string | null> | null;
}

function columns(rows: readonly EnqueueRow[], defaultMaxAttempts: number): EnqueueColumns {
  const n = rows.length;
  const types = new Array<string>(n);
  const payloads = new Array<unknown>(n);
  let queues: Array<string | null> | null = null;
  let priorities: Array<number | null> | null = null;
  let runAts: Array<string | null> | null = null;
  let delays: Array<number | null> | null = null;
  let maxAttempts: Array<number | null> | null = null;
  let keys: Array<string | null> | null = null;
  let hashes: Array<string | null> | null = null;
  const sparse = <T>(col: Array<T | null> | null, i: number, v: T): Array<T | null> => {
    const out = col ?? new Array<T | null>(n).fill(null);
    out[i] = v;
    return out;
  };
  for (let i = 0; i < n; i++) {
    const r = rows[i]!;
    types[i] = r.type;
    payloads[i] = r.payload;
    if (r.queue !== 'default') queues = sparse(queues, i, r.queue);
    if (r.priority !== 0) priorities = sparse(priorities, i, r.priority);
    if (r.run_at !== null) runAts = sparse(runAts, i, r.run_at);
    if (r.delay !== 0) delays = sparse(delays, i, r.delay);
    if (r.max_attempts !== defaultMaxAttempts) maxAttempts = sparse(maxAttempts, i, r.max_attempts);
    if (r.key !== null) {
      keys = sparse(keys, i, r.key);
      hashes = sparse(hashes, i, r.hash);
    }
  }
  // An undefined payload becomes null in a JSON array, as the json document's missing field did.
  return {
    types,
    payloads: JSON.stringify(payloads),
    queues,
    priorities,
    runAts,
    delays,
    maxAttempts,
    keys,
    hashes,
  };
}

/**
 * One INSERT for the whole batch, its rows sent as columns (see columns), recording `createdBy`
 * (the verified caller, or null) on every row. Both paths are functions of migration 0009
 * (PL/pgSQL, so their plans are cached; SECURITY DEFINER, so the api role needs no write on
 * jobs). A keyed batch goes through jobs_enqueue_keyed: rows whose idempotency key exists
 * already are skipped (ON CONFLICT DO NOTHING) and resolved by the caller. Keyed rows are
 * inserted in key order: a batch waits on a key another uncommitted batch holds, so batches
 * taking the same keys in different orders deadlocked (40P01 in 3 of 5 runs of
 * idempotency.test.ts: 50 concurrent batches of 40 rotated keys; 0 of 10 sorted). Unkeyed rows
 * keep the input order, so they sort back by id; keyed rows are matched by key. A batch without
 * keys goes through jobs_enqueue_unkeyed, which skips ON CONFLICT (a speculative insert per row)
 * and the ordering. Only what the database decides (id, times) comes back: a row per job when
 * keyed, else one aggregated row.
 */
export async function enqueueJobs(
  db: Queryable,
  rows: EnqueueRow[],
  defaultMaxAttempts: number,
  createdBy: string | null = null,
): Promise<InsertedRow[]> {
  const c = columns(rows, defaultMaxAttempts);
  // $1-$9 of both functions.
  const params = [
    c.types,
    c.payloads,
    c.queues,
    c.priorities,
    c.runAts,
    c.delays,
    c.maxAttempts,
    defaultMaxAttempts,
    createdBy,
  ];
  if (c.keys !== null) {
    // Every array holds one element per row or is null (the function checks): the columns are
    // built together above.
    const { rows: inserted } = await db.query<InsertedRow>(
      `SELECT o_id AS id, o_idempotency_key AS idempotency_key, o_lease_seconds AS lease_seconds,
              o_run_at_ms AS run_at_ms, o_created_at_ms AS created_at_ms
       FROM jobs_enqueue_keyed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [...params, c.keys, c.hashes],
    );
    return inserted;
  }
  // Without keys every row is new, and what the database decides is the same for all of them
  // but the id: the function answers one row with the ids in one text. run_at differs from
  // created_at (one statement's now()) only for rows sent with runAt or a delay.
  const { rows: agg } = await db.query<{
    o_ids: string | null;
    o_lease_seconds: number;
    o_created_at_ms: number;
    o_run_at_ms: string | null;
  }>('SELECT * FROM jobs_enqueue_unkeyed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)', [
    ...params,
    c.runAts !== null || c.delays !== null,
  ]);
  const {
    o_ids: ids,
    o_lease_seconds: leaseSeconds,
    o_created_at_ms: createdAtMs,
    o_run_at_ms: runAtMs,
  } = agg[0]!;
  if (!ids) return [];
  const runAts = runAtMs ? runAtMs.split(',') : undefined;
  return ids.split(',').map((id, i) => ({
    id,
    idempotency_key: null,
    lease_seconds: leaseSeconds,
    run_at_ms: runAts ? Number(runAts[i]) : createdAtMs,
    created_at_ms: createdAtMs,
  }));
}

/** A key's job as stored, with the hash of the request and the caller that created it. */
export type KeptKeyedJob = JobRow & { request_hash: string | null; created_by: string | null; gone: false };

/**
 * A key whose job is gone: deleted on completion by a queue whose retention is `delete`
 * (functions/retention.sql). job_keys still knows the job's id, when its key was taken, the
 * request's hash and its creator; the job completed.
 */
export interface GoneKeyedJob {
  id: string;
  idempotency_key: string;
  status: 'completed';
  created_at: Date;
  request_hash: string | null;
  created_by: string | null;
  gone: true;
}

export type KeyedJob = KeptKeyedJob | GoneKeyedJob;

/**
 * The jobs holding idempotency keys, kept or gone (jobs_find_by_keys of functions/retention.sql:
 * job_keys, which the api role cannot read, joined to `jobs`). Hash and creator are job_keys',
 * written with the job by the same statement.
 */
export async function findJobsByIdempotencyKeys(db: Queryable, keys: string[]): Promise<KeyedJob[]> {
  const { rows } = await db.query<
    JobRow & { request_hash: string | null; created_by: string | null; o_gone: boolean }
  >(`SELECT ${JOB_COLUMNS}, request_hash, created_by, o_gone FROM jobs_find_by_keys($1::text[])`, [keys]);
  return rows.map(({ o_gone, ...r }): KeyedJob => {
    if (!o_gone) return { ...r, gone: false };
    return {
      id: String(r.id),
      idempotency_key: r.idempotency_key!,
      status: 'completed',
      created_at: r.created_at,
      request_hash: r.request_hash,
      created_by: r.created_by,
      gone: true,
    };
  });
}
