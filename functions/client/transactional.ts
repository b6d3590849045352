import type { z } from 'zod';
import {
  type EnqueueRequest,
  type EnqueueResult,
  enqueue as engineEnqueue,
  enqueueMany as engineEnqueueMany,
  LIMITS,
} from '../engine/enqueue.ts';
import type { Db, Queryable } from '../engine/queryable.ts';
import { validateJobRequest } from '../http/validate.ts';
import type { TaskRegistry } from '../tasks/define.ts';
import { fromEngineError } from './errors.ts';
import { isTask, type JobOptions, type JobRequest, type TaskLike, taskOf } from './types.ts';

/**
 * Anything with pg's `query(text, values)`: a `pg.Client` or the client a `pg.Pool` handed out
 * for the caller's transaction (node-postgres, or anything shaped like it).
 */
export interface SqlClient {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[]; rowCount?: number | null }>;
}

/** What validation needs of a task registry: the functions' own `TaskRegistry` fits. */
export interface RegistryLike {
  get(type: string): TaskLike | undefined;
}

export interface TransactionalOptions {
  /** Validate type and payload as the api would (422 there, ValidationError here). */
  registry?: RegistryLike;
  /** The api's MAX_PAYLOAD_BYTES; default its default. */
  maxPayloadBytes?: number;
}

export type { EnqueueResult };

const DEFAULT_MAX_PAYLOAD_BYTES = 262_144;
/** Validation without a registry: every type is accepted, any JSON payload. */
const anyPayload = {
  safeParse: (value: unknown) => ({ success: true, data: value }),
} as unknown as z.ZodType;
const ANY_TASK: RegistryLike = { get: (type) => ({ type, schema: anyPayload }) };

/** The api's own request validation (shape, limits, payload content, the task's schema), then the task's default maxAttempts. */
function validate(
  request: JobRequest,
  index: number | undefined,
  options: TransactionalOptions,
): EnqueueRequest {
  const task = taskOf(request);
  const registry: RegistryLike = task
    ? { get: (type) => (type === task.type ? task : undefined) }
    : (options.registry ?? ANY_TASK);
  const { type, payload, queue, priority, runAt, delaySeconds, maxAttempts, idempotencyKey } = request;
  const raw = {
    type,
    payload,
    queue,
    priority,
    runAt: runAt instanceof Date ? runAt.toISOString() : runAt,
    delaySeconds,
    maxAttempts,
    idempotencyKey,
  };
  return validateJobRequest(raw, {
    registry: registry as unknown as TaskRegistry,
    maxPayloadBytes: options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
    ...(index === undefined ? {} : { index }),
  });
}

function isPool(db: unknown): db is SqlClient & {
  connect(): Promise<SqlClient & { release(err?: unknown): void }>;
} {
  const d = db as { connect?: unknown; totalCount?: unknown };
  return typeof d.connect === 'function' && typeof d.totalCount === 'number';
}

const NO_ACTIVE_TRANSACTION = '25P01';

/**
 * The caller's client as the engine's Db. The engine runs a keyed batch in a transaction so
 * a conflicting key undoes the whole batch; in the caller's transaction that is a savepoint, so
 * the batch is undone and the caller's transaction stays usable. On a client outside any
 * transaction (the savepoint is refused) it is a transaction of its own, and on a pool one on a
 * single connection the pool hands out.
 */
function asDb(client: SqlClient): Db {
  const q = client as unknown as Queryable;
  return {
    query: (text, values) => q.query(text, values),
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      if (isPool(client)) {
        const c = await client.connect();
        try {
          await c.query('BEGIN');
          const out = await fn(c as unknown as Queryable);
          await c.query('COMMIT');
          c.release();
          return out;
        } catch (err) {
          await c.query('ROLLBACK').catch(() => {});
          c.release();
          throw err;
        }
      }
      let savepoint = true;
      try {
        await client.query('SAVEPOINT dte_enqueue');
      } catch (err) {
        if ((err as { code?: string }).code !== NO_ACTIVE_TRANSACTION) throw err;
        savepoint = false;
        await client.query('BEGIN');
      }
      try {
        const out = await fn(q);
        await client.query(savepoint ? 'RELEASE SAVEPOINT dte_enqueue' : 'COMMIT');
        return out;
      } catch (err) {
        await client.query(savepoint ? 'ROLLBACK TO SAVEPOINT dte_enqueue' : 'ROLLBACK').catch(() => {});
        throw err;
      }
    },
    end: async () => {},
  };
}

function rethrow(err: unknown): never {
  throw fromEngineError(err);
}

/**
 * Enqueues one job with the caller's own client, inside the caller's transaction: the job
 * exists (and counts as submitted) only if that transaction commits. Same statements, same
 * validation and the same idempotency rules as the api.
 */
export function enqueue<S extends z.ZodType>(
  client: SqlClient,
  task: TaskLike<S>,
  payload: z.input<S>,
  options?: JobOptions & Pick<TransactionalOptions, 'maxPayloadBytes'>,
): Promise<EnqueueResult>;
export function enqueue(
  client: SqlClient,
  request: JobRequest,
  options?: TransactionalOptions,
): Promise<EnqueueResult>;
export async function enqueue(
  client: SqlClient,
  first: TaskLike | JobRequest,
  second?: unknown,
  third?: JobOptions & TransactionalOptions,
): Promise<EnqueueResult> {
  let request: JobRequest;
  let options: TransactionalOptions;
  if (isTask(first)) {
    const { maxPayloadBytes, ...jobOptions } = third ?? {};
    request = { ...jobOptions, type: first.type, payload: second };
    Object.defineProperty(request, 'task', { value: first, enumerable: false });
    options = maxPayloadBytes === undefined ? {} : { maxPayloadBytes };
  } else {
    request = first;
    options = (second as TransactionalOptions | undefined) ?? {};
  }
  try {
    return await engineEnqueue(asDb(client), validate(request, undefined, options));
  } catch (err) {
    rethrow(err);
  }
}

/** Enqueues up to 500 jobs in one statement with the caller's client, all or nothing. */
export async function enqueueMany(
  client: SqlClient,
  requests: readonly JobRequest[],
  options: TransactionalOptions = {},
): Promise<EnqueueResult[]> {
  try {
    const reqs = requests.map((r, i) => validate(r, i, options));
    return await engineEnqueueMany(asDb(client), reqs, { maxBatch: LIMITS.batch });
  } catch (err) {
    rethrow(err);
  }
}
