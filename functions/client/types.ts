import type { z } from 'zod';
import type { CatchUp, Schedule, ScheduleDefinition } from '../engine/schema.ts';

export type { CatchUp, ScheduleDefinition };

/** A job as the HTTP API shows it (README, "API"): times are ISO 8601 text. */
export interface JobView {
  id: string;
  queue: string;
  type: string;
  status: 'queued' | 'running' | 'completed' | 'failed';
  priority: number;
  runAt: string;
  /** null: not known, for a replay of a job its queue deleted on completion (retention `delete`). */
  attempts: number | null;
  maxAttempts: number;
  lastError: unknown;
  result: unknown;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

/** Everything of a job request but its type and payload. */
export interface JobOptions {
  queue?: string;
  priority?: number;
  runAt?: Date | string;
  delaySeconds?: number;
  maxAttempts?: number;
  /** Same key + same request → the existing job, never a second one. The client makes one when absent. */
  idempotencyKey?: string;
}

/** One job to enqueue, as the API takes it. */
export interface JobRequest extends JobOptions {
  type: string;
  payload?: unknown;
}

/**
 * What the client needs of a task definition: its type and its zod schema. Any `defineTask(…)`
 * result fits, and so does a plain `{ type, schema }` shared with the service that runs it.
 */
export interface TaskLike<S extends z.ZodType = z.ZodType> {
  type: string;
  schema: S;
  maxAttempts?: number | undefined;
}

/** The payload a task takes: its schema's input type. */
export type PayloadOf<T> = T extends TaskLike<infer S> ? z.input<S> : never;

/** A typed job request: `job(sendEmail, { to, subject })` fails to compile with a wrong payload. */
export interface TypedJobRequest<S extends z.ZodType = z.ZodType> extends JobRequest {
  /** The task it was built from, so its schema can be checked before anything is sent. */
  readonly task: TaskLike<S>;
}

export function job<S extends z.ZodType>(
  task: TaskLike<S>,
  payload: z.input<S>,
  options: JobOptions = {},
): TypedJobRequest<S> {
  const request: TypedJobRequest<S> = { ...options, type: task.type, payload, task };
  // Not enumerable: JSON.stringify and spreads of the request never carry the schema along.
  Object.defineProperty(request, 'task', { value: task, enumerable: false });
  return request;
}

export function isTask(value: unknown): value is TaskLike {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as TaskLike).type === 'string' &&
    typeof (value as { schema?: { safeParse?: unknown } }).schema?.safeParse === 'function'
  );
}

/** The task a request was built from by `job()`, if any. */
export function taskOf(request: JobRequest): TaskLike | undefined {
  const task = (request as Partial<TypedJobRequest>).task;
  return isTask(task) ? task : undefined;
}

/** A schedule of a typed task: the payload is the task's schema input, `type` comes from the task. */
export type TypedScheduleDefinition<S extends z.ZodType = z.ZodType> = Omit<
  ScheduleDefinition,
  'type' | 'payload'
> & { payload: z.input<S> };

/** A Date field as JSON carries it: ISO 8601 text. */
type Wire<T> = {
  [K in keyof T]: T[K] extends Date ? string : T[K] extends Date | null ? string | null : T[K];
};

/**
 * A schedule as the API shows it (the engine's Schedule, times as ISO 8601 text). `source`
 * `code`: defined with defineSchedule; only pause and resume apply to it (else 409
 * schedule_defined_in_code). `nextAt` is null until the reaper's first pass.
 */
export type ScheduleView = Wire<Omit<Schedule, 'createdAt' | 'updatedAt'>>;

/** A queue's limits as `GET /queues/limits` shows them; null: no such limit. */
export interface QueueLimits {
  name: string;
  maxRunning: number | null;
  ratePerSecond: number | null;
  rateBurst: number | null;
}

/**
 * A queue's retention as `GET /queues/retention` shows it: `keep` (the default) keeps completed
 * jobs for the retention; `delete` deletes each as it completes (failed jobs are kept, and a
 * replay of a deleted job's idempotency key answers the same id, status completed, attempts null).
 */
export interface QueueRetention {
  name: string;
  retention: 'keep' | 'delete';
}

/** What `setLimits` changes: an absent field is kept, `null` removes that limit; `burst` needs a rate. */
export interface QueueLimitChange {
  maxRunning?: number | null;
  /** Claims per second. */
  rate?: number | null;
  /** Claims at once after a quiet spell; default one second's worth of the rate. */
  burst?: number | null;
}
