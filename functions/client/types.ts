import type { z } from 'zod';

/** A job as the HTTP API shows it (README, "API"): times are ISO 8601 text. */
export interface JobView {
  id: string;
  queue: string;
  type: string;
  status: 'queued' | 'running' | 'completed' | 'failed';
  priority: number;
  runAt: string;
  attempts: number;
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

export type CatchUp = 'skip' | 'latest' | 'all';

/** A run-time schedule as `POST /schedules` takes it (README, "Schedules and queue limits"). */
export interface ScheduleDefinition {
  /** 1-128 of [A-Za-z0-9_.:-]; the schedule's identity: putting the same name again replaces it. */
  name: string;
  /** 5 fields (minute hour day month weekday), or 6 with seconds first. */
  cron: string;
  /** IANA time zone; default UTC. */
  timezone?: string;
  type: string;
  payload?: unknown;
  queue?: string;
  priority?: number;
  maxAttempts?: number;
  enabled?: boolean;
  /** What an occurrence missed while everything was down does; default `latest`. */
  catchUp?: CatchUp;
}

/** A schedule of a typed task: the payload is the task's schema input, `type` comes from the task. */
export type TypedScheduleDefinition<S extends z.ZodType = z.ZodType> = Omit<
  ScheduleDefinition,
  'type' | 'payload'
> & { payload: z.input<S> };

/** A schedule as the API shows it: times are ISO 8601 text. */
export interface ScheduleView {
  name: string;
  cron: string;
  timezone: string;
  type: string;
  payload: unknown;
  queue: string;
  priority: number;
  maxAttempts: number | null;
  enabled: boolean;
  catchUp: CatchUp;
  /** `code`: defined with defineSchedule; only pause and resume apply to it (else 409 schedule_defined_in_code). */
  source: 'api' | 'code';
  /** The earliest occurrence not yet enqueued (null until the reaper's first pass). */
  nextAt: string | null;
  /** The latest occurrence enqueued. */
  lastRunAt: string | null;
  /** When an occurrence was last enqueued. */
  lastEnqueuedAt: string | null;
}

/** A queue's limits as `GET /queues/limits` shows them; null: no such limit. */
export interface QueueLimits {
  name: string;
  maxRunning: number | null;
  ratePerSecond: number | null;
  rateBurst: number | null;
}

/** What `setLimits` changes: an absent field is kept, `null` removes that limit; `burst` needs a rate. */
export interface QueueLimitChange {
  maxRunning?: number | null;
  /** Claims per second. */
  rate?: number | null;
  /** Claims at once after a quiet spell; default one second's worth of the rate. */
  burst?: number | null;
}
