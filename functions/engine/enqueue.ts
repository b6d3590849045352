import { createHash } from 'node:crypto';
import { ConflictError, ValidationError } from './errors.ts';
import type { Db, Queryable } from './queryable.ts';
import { type EnqueueRow, enqueueJobs, findJobsByIdempotencyKeys } from './sql/enqueueJobs.ts';
import { type Job, type JobRow, toJob } from './types.ts';

export interface EnqueueRequest {
  type: string;
  payload?: unknown;
  queue?: string | undefined;
  priority?: number | undefined;
  runAt?: Date | string | undefined;
  delaySeconds?: number | undefined;
  maxAttempts?: number | undefined;
  idempotencyKey?: string | undefined;
}

export interface EnqueueResult {
  job: Job;
  /** false when an idempotency key matched an existing job made by the same request. */
  created: boolean;
}

export const LIMITS = {
  priority: { min: -32768, max: 32767 },
  maxAttempts: { min: 1, max: 1000 },
  delaySeconds: { min: 0, max: 365 * 86_400 },
  queue: /^[A-Za-z0-9_.:-]{1,128}$/,
  type: /^[A-Za-z0-9_.:-]{1,200}$/,
  idempotencyKeyLength: 255,
  batch: 500,
} as const;
export const DEFAULT_MAX_ATTEMPTS = 5;

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

function fail(index: number | undefined, message: string, field: string): never {
  const where = index === undefined ? field : `jobs[${index}].${field}`;
  throw new ValidationError(`${where}: ${message}`, { details: { field: where } });
}

/** Checks bounds and applies defaults; the normalized request is what the idempotency hash covers. */
export function normalizeRequest(req: EnqueueRequest, index?: number): EnqueueRow {
  if (typeof req.type !== 'string' || !LIMITS.type.test(req.type))
    fail(index, 'must be 1-200 of [A-Za-z0-9_.:-]', 'type');
  const queue = req.queue ?? 'default';
  if (typeof queue !== 'string' || !LIMITS.queue.test(queue))
    fail(index, 'must be 1-128 of [A-Za-z0-9_.:-]', 'queue');
  const priority = req.priority ?? 0;
  if (!Number.isInteger(priority) || priority < LIMITS.priority.min || priority > LIMITS.priority.max) {
    fail(index, `must be an integer from ${LIMITS.priority.min} to ${LIMITS.priority.max}`, 'priority');
  }
  const maxAttempts = req.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (
    !Number.isInteger(maxAttempts) ||
    maxAttempts < LIMITS.maxAttempts.min ||
    maxAttempts > LIMITS.maxAttempts.max
  ) {
    fail(
      index,
      `must be an integer from ${LIMITS.maxAttempts.min} to ${LIMITS.maxAttempts.max}`,
      'maxAttempts',
    );
  }
  if (req.runAt !== undefined && req.delaySeconds !== undefined)
    fail(index, 'give runAt or delaySeconds, not both', 'runAt');
  let runAt: string | null = null;
  if (req.runAt !== undefined) {
    const date = req.runAt instanceof Date ? req.runAt : new Date(req.runAt);
    if (
      Number.isNaN(date.getTime()) ||
      (typeof req.runAt === 'string' && !/^\d{4}-\d{2}-\d{2}T/.test(req.runAt))
    ) {
      fail(index, 'must be an ISO 8601 timestamp', 'runAt');
    }
    runAt = date.toISOString();
  }
  const delay = req.delaySeconds ?? 0;
  if (
    typeof delay !== 'number' ||
    !Number.isFinite(delay) ||
    delay < LIMITS.delaySeconds.min ||
    delay > LIMITS.delaySeconds.max
  ) {
    fail(
      index,
      `must be a number from ${LIMITS.delaySeconds.min} to ${LIMITS.delaySeconds.max}`,
      'delaySeconds',
    );
  }
  const key = req.idempotencyKey ?? null;
  if (
    key !== null &&
    (typeof key !== 'string' || key.length === 0 || key.length > LIMITS.idempotencyKeyLength)
  ) {
    fail(index, `must be 1-${LIMITS.idempotencyKeyLength} characters`, 'idempotencyKey');
  }
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

async function insertResolvingKeys(tx: Queryable, rows: EnqueueRow[]): Promise<EnqueueResult[]> {
  const inserted = await enqueueJobs(tx, rows);
  inserted.sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
  const byKey = new Map<string, JobRow & { request_hash?: string | null }>();
  const unkeyed: JobRow[] = [];
  for (const r of inserted) {
    if (r.idempotency_key !== null) byKey.set(r.idempotency_key, r);
    else unkeyed.push(r);
  }
  const insertedKeys = new Set(byKey.keys());
  const missing = [
    ...new Set(rows.filter((r) => r.key !== null && !insertedKeys.has(r.key)).map((r) => r.key!)),
  ];
  if (missing.length > 0) {
    for (const r of await findJobsByIdempotencyKeys(tx, missing)) byKey.set(r.idempotency_key!, r);
  }
  // A key inserted earlier in this same batch counts as "created" only for its first occurrence.
  const claimedKeys = new Set<string>();
  let next = 0;
  return rows.map((row, index) => {
    if (row.key === null) {
      const r = unkeyed[next++];
      if (!r) throw new Error('enqueue: fewer rows returned than sent');
      return { job: toJob(r), created: true };
    }
    const existing = byKey.get(row.key);
    if (!existing)
      throw new ConflictError(
        'idempotency_conflict',
        `idempotency key ${JSON.stringify(row.key)} is held by a job being written concurrently`,
      );
    if (existing.request_hash !== row.hash) {
      throw new ConflictError(
        'idempotency_conflict',
        `idempotency key ${JSON.stringify(row.key)} was already used for a different request (job ${existing.id})`,
        { details: { index, jobId: String(existing.id), idempotencyKey: row.key } },
      );
    }
    const created = insertedKeys.has(row.key) && !claimedKeys.has(row.key);
    claimedKeys.add(row.key);
    return { job: toJob(existing), created };
  });
}

/** Enqueues one job. Same idempotency key + same request → the existing job; different → ConflictError. */
export async function enqueue(db: Queryable, req: EnqueueRequest): Promise<EnqueueResult> {
  const [result] = await insertResolvingKeys(db, [normalizeRequest(req)]);
  return result!;
}

/**
 * Enqueues many jobs in one INSERT statement. All or nothing: with idempotency keys it runs in
 * a transaction so a conflicting key rolls the whole batch back.
 */
export async function enqueueMany(
  db: Db,
  reqs: EnqueueRequest[],
  options: { maxBatch?: number } = {},
): Promise<EnqueueResult[]> {
  if (reqs.length === 0) return [];
  if (options.maxBatch !== undefined && reqs.length > options.maxBatch) {
    throw new ValidationError(`a batch holds at most ${options.maxBatch} jobs, got ${reqs.length}`, {
      code: 'batch_too_large',
    });
  }
  const rows = reqs.map((r, i) => normalizeRequest(r, i));
  if (rows.every((r) => r.key === null)) return insertResolvingKeys(db, rows);
  return db.transaction((tx) => insertResolvingKeys(tx, rows));
}
