import { createHash } from 'node:crypto';
import { ANYONE, canSee, mayName, type Viewer } from './access.ts';
import { deadlineMargin } from './consumer.ts';
import { ConflictError, ValidationError } from './errors.ts';
import type { Db, Queryable } from './queryable.ts';
import { checkEnqueueRequest, type EnqueueRequest, LIMITS, runAtText } from './schema.ts';
import {
  type EnqueueRow,
  enqueueJobs,
  findJobsByIdempotencyKeys,
  type GoneKeyedJob,
  type InsertedRow,
  type KeyedJob,
} from './sql/enqueueJobs.ts';
import { type Job, toJob } from './types.ts';

export { type EnqueueRequest, LIMITS };

export interface EnqueueResult {
  job: Job;
  /** false when an idempotency key matched an existing job made by the same request. */
  created: boolean;
}

export const DEFAULT_MAX_ATTEMPTS = 5;

/**
 * Refuses a job whose task can never run to its own timeout inside one consumer invocation: the
 * consumer keeps deadlineMargin() of every invocation for its final statements, so a task whose
 * timeoutSeconds exceeds what is left would be aborted at the deadline on every attempt.
 * Unknown invocation limit or no task timeout: nothing to check.
 */
export function checkFitsInvocation(
  task: { type: string; timeoutSeconds?: number | undefined },
  invocationSeconds: number | undefined,
  index?: number,
): void {
  if (task.timeoutSeconds === undefined || invocationSeconds === undefined) return;
  const invocationMs = invocationSeconds * 1000;
  const usableMs = invocationMs - deadlineMargin(invocationMs);
  if (task.timeoutSeconds * 1000 <= usableMs) return;
  const where = index === undefined ? '' : `jobs.${index}.`;
  throw new ValidationError(
    `${where}type: task ${task.type} may run ${task.timeoutSeconds} s, but a consumer invocation gives a task at most ${usableMs / 1000} s (${invocationSeconds} s less the ${deadlineMargin(invocationMs) / 1000} s kept for its final statements); it could never finish`,
    {
      code: 'task_timeout_exceeds_invocation',
      details: {
        type: task.type,
        timeoutSeconds: task.timeoutSeconds,
        invocationSeconds,
        usableSeconds: usableMs / 1000,
        ...(index === undefined ? {} : { index, path: `${where}type` }),
      },
    },
  );
}

/** JSON with object keys sorted, so equal requests hash equally whatever their key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * Applies defaults and computes the idempotency hash over the request as defaulted; the request
 * was checked first (checkEnqueueRequest, engine/schema.ts).
 */
export function normalizeRequest(req: EnqueueRequest): EnqueueRow {
  const queue = req.queue ?? 'default';
  const priority = req.priority ?? 0;
  const maxAttempts = req.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const checked = req.runAt === undefined ? null : runAtText(req.runAt);
  const runAt = checked && 'iso' in checked ? checked.iso : null;
  const delay = req.delaySeconds ?? 0;
  const key = req.idempotencyKey ?? null;
  const payload = req.payload === undefined ? null : req.payload;
  const row: EnqueueRow = {
    queue,
    type: req.type,
    payload,
    priority,
    run_at: runAt,
    delay,
    max_attempts: maxAttempts,
    key,
    hash: null,
  };
  if (key !== null) {
    const identity = { type: row.type, payload, queue, priority, runAt, delay, maxAttempts };
    row.hash = createHash('sha256').update(canonicalJson(identity)).digest('hex');
  }
  return row;
}

/** Checked, then defaulted: the row the insert writes. */
function rowOf(req: EnqueueRequest, index?: number): EnqueueRow {
  checkEnqueueRequest(req, index);
  return normalizeRequest(req);
}

/** The job as stored by this insert: what was sent, plus what the database decided. */
function insertedJob(row: EnqueueRow, r: InsertedRow): Job {
  const createdAt = new Date(r.created_at_ms);
  return {
    id: String(r.id),
    queue: row.queue,
    type: row.type,
    payload: row.payload,
    status: 'queued',
    priority: row.priority,
    runAt: new Date(r.run_at_ms),
    attempts: 0,
    maxAttempts: row.max_attempts,
    leaseToken: '0',
    lockedAt: null,
    lockedBy: null,
    leaseSeconds: r.lease_seconds,
    startedAt: null,
    finishedAt: null,
    createdAt,
    updatedAt: createdAt,
    lastError: null,
    result: null,
    idempotencyKey: row.key,
  };
}

/**
 * The replay of a key whose job its queue deleted on completion (retention `delete`): the same
 * id, status completed. The request matched the key's hash, so what it asked for is what the job
 * was (queue, type, payload, priority, run time, max attempts); what only the deleted row knew
 * (attempts, lease, start and finish times, result) is null, and updatedAt is the last time
 * known, the key's.
 */
function goneJob(row: EnqueueRow, gone: GoneKeyedJob): Job {
  const createdAt = gone.created_at;
  return {
    id: gone.id,
    queue: row.queue,
    type: row.type,
    payload: row.payload,
    status: 'completed',
    priority: row.priority,
    runAt: row.run_at !== null ? new Date(row.run_at) : new Date(createdAt.getTime() + row.delay * 1000),
    attempts: null,
    maxAttempts: row.max_attempts,
    leaseToken: '0',
    lockedAt: null,
    lockedBy: null,
    leaseSeconds: null,
    startedAt: null,
    finishedAt: null,
    createdAt,
    updatedAt: createdAt,
    lastError: null,
    result: null,
    idempotencyKey: gone.idempotency_key,
  };
}

/** Ids are decimal strings without leading zeros: shorter is smaller, equal lengths compare as text. */
function byId(a: { id: string }, b: { id: string }): number {
  return a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** RETURNING comes back in insertion order in practice; checking is O(n), sorting only when it is not. */
function inIdOrder(rows: ReadonlyArray<{ id: string }>): boolean {
  for (let i = 1; i < rows.length; i++) if (byId(rows[i - 1]!, rows[i]!) > 0) return false;
  return true;
}

async function insertResolvingKeys(
  tx: Queryable,
  rows: EnqueueRow[],
  viewer: Viewer,
): Promise<EnqueueResult[]> {
  const inserted = await enqueueJobs(tx, rows, DEFAULT_MAX_ATTEMPTS, viewer.caller);
  if (!inIdOrder(inserted)) inserted.sort(byId);
  const insertedByKey = new Map<string, InsertedRow>();
  const unkeyed: InsertedRow[] = [];
  for (const r of inserted) {
    if (r.idempotency_key !== null) insertedByKey.set(r.idempotency_key, r);
    else unkeyed.push(r);
  }
  const missing = [
    ...new Set(rows.filter((r) => r.key !== null && !insertedByKey.has(r.key)).map((r) => r.key!)),
  ];
  const existing = new Map<string, KeyedJob>();
  if (missing.length > 0) {
    for (const r of await findJobsByIdempotencyKeys(tx, missing)) existing.set(r.idempotency_key!, r);
  }
  // A key inserted by this batch counts as "created" only for its first occurrence; a repeat in
  // the same batch must carry the same request.
  const firstRowForKey = new Map<string, EnqueueRow>();
  let next = 0;
  return rows.map((row, index) => {
    if (row.key === null) {
      const r = unkeyed[next++];
      if (!r) throw new Error('enqueue: fewer rows returned than sent');
      return { job: insertedJob(row, r), created: true };
    }
    const mine = insertedByKey.get(row.key);
    const first = firstRowForKey.get(row.key);
    if (mine && !first) {
      firstRowForKey.set(row.key, row);
      return { job: insertedJob(row, mine), created: true };
    }
    const old = existing.get(row.key);
    const storedHash = mine ? first!.hash : old?.request_hash;
    if (!mine && !old) {
      throw new ConflictError(
        'idempotency_conflict',
        `idempotency key ${JSON.stringify(row.key)} is held by a job being written concurrently`,
      );
    }
    // Another caller's job is never named, and with creator-only visibility never replayed.
    const named = mine !== undefined || mayName(viewer, old!.created_by);
    if (storedHash !== row.hash) {
      const jobId = mine ? String(mine.id) : String(old!.id);
      throw new ConflictError(
        'idempotency_conflict',
        named
          ? `idempotency key ${JSON.stringify(row.key)} was already used for a different request (job ${jobId})`
          : `idempotency key ${JSON.stringify(row.key)} was already used for a different request`,
        { details: named ? { index, jobId, idempotencyKey: row.key } : { index, idempotencyKey: row.key } },
      );
    }
    if (!mine && !canSee(viewer, old!.created_by)) {
      throw new ConflictError(
        'idempotency_conflict',
        `idempotency key ${JSON.stringify(row.key)} is held by another caller's job`,
        { details: { index, idempotencyKey: row.key } },
      );
    }
    if (mine) return { job: insertedJob(first!, mine), created: false };
    return { job: old!.gone ? goneJob(row, old!) : toJob(old!), created: false };
  });
}

/**
 * Enqueues one job, created by `viewer.caller`. Same idempotency key + same request → the
 * existing job; different → ConflictError (naming the job only to its creator).
 */
export async function enqueue(
  db: Queryable,
  req: EnqueueRequest,
  viewer: Viewer = ANYONE,
): Promise<EnqueueResult> {
  const [result] = await insertResolvingKeys(db, [rowOf(req)], viewer);
  return result!;
}

/**
 * Enqueues many jobs in one INSERT statement. All or nothing: with idempotency keys it runs in
 * a transaction so a conflicting key rolls the whole batch back.
 */
export async function enqueueMany(
  db: Db,
  reqs: EnqueueRequest[],
  options: { maxBatch?: number; viewer?: Viewer } = {},
): Promise<EnqueueResult[]> {
  if (reqs.length === 0) return [];
  if (options.maxBatch !== undefined && reqs.length > options.maxBatch) {
    throw new ValidationError(`a batch holds at most ${options.maxBatch} jobs, got ${reqs.length}`, {
      code: 'batch_too_large',
    });
  }
  const rows = reqs.map((r, i) => rowOf(r, i));
  const viewer = options.viewer ?? ANYONE;
  if (rows.every((r) => r.key === null)) return insertResolvingKeys(db, rows, viewer);
  return db.transaction((tx) => insertResolvingKeys(tx, rows, viewer));
}
