import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import { ConflictError, NotFoundError, WaitTimeoutError } from './errors.ts';
import { type RetryOptions, retryPolicy, sleep } from './retry.ts';
import {
  type Credentials,
  type CredentialsProvider,
  regionFromHost,
  type Signer,
  sigV4Signer,
} from './sigv4.ts';
import { type Auth, createTransport, type FetchLike, type Transport } from './transport.ts';
import {
  isTask,
  type JobOptions,
  type JobRequest,
  type JobView,
  type QueueLimitChange,
  type QueueLimits,
  type QueueRetention,
  type ScheduleDefinition,
  type ScheduleView,
  type TaskLike,
  type TypedScheduleDefinition,
} from './types.ts';
import { checkPayload, jobPath, namePath, wireJob, wireSchedule } from './wire.ts';

export type { Auth, FetchLike } from './transport.ts';

export interface ClientOptions {
  /** The API's base URL, the stage path included: the stack's `ApiUrl` output, or http://localhost:3000 for `npm start`. */
  url: string;
  /** 'iam': SigV4 (the stack's default `apiAuth`); `{ jwt }`: a bearer token or a function returning one; 'none': the local engine. */
  auth: Auth;
  /** For SigV4; default: from an `execute-api` host name, else AWS_REGION / AWS_DEFAULT_REGION. */
  region?: string;
  /** For SigV4; default: the AWS SDK's default credential provider chain. */
  credentials?: Credentials | CredentialsProvider;
  fetch?: FetchLike;
  retry?: RetryOptions;
  /** Bound on one attempt; a request unanswered by then is retried as "outcome unknown". */
  attemptTimeoutMs?: number;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface WaitOptions {
  /** Milliseconds to wait for a terminal state before WaitTimeoutError. */
  timeout?: number;
  signal?: AbortSignal;
  /** First poll interval; it grows by half per poll up to 2 s. */
  intervalMs?: number;
}

/**
 * The schedule calls (`/schedules`). Every one may be retried after a lost answer: `put` is an
 * upsert by name, `pause` / `resume` set a flag, and `remove` reports a schedule already gone
 * after an unknown outcome as removed (see each).
 */
export interface SchedulesClient {
  /** Creates or replaces the run-time schedule of that name; with a task, its payload is typed and checked here first. */
  put<S extends z.ZodType>(
    task: TaskLike<S>,
    definition: TypedScheduleDefinition<S>,
    options?: CallOptions,
  ): Promise<ScheduleView>;
  put(definition: ScheduleDefinition, options?: CallOptions): Promise<ScheduleView>;
  list(options?: CallOptions): Promise<ScheduleView[]>;
  /** NotFoundError when there is none of that name. */
  get(name: string, options?: CallOptions): Promise<ScheduleView>;
  /** Removes a run-time schedule (its jobs already enqueued stay); NotFoundError, or ConflictError for a code-defined one. */
  remove(name: string, options?: CallOptions): Promise<{ name: string; removed: true }>;
  /** Stops enqueuing its occurrences (code-defined schedules too). */
  pause(name: string, options?: CallOptions): Promise<ScheduleView>;
  resume(name: string, options?: CallOptions): Promise<ScheduleView>;
}

/** The queue limit and retention calls (`/queues`). */
export interface QueuesClient {
  /** The queues that have a limit. */
  limits(options?: CallOptions): Promise<QueueLimits[]>;
  /** Sets (or, with null, removes) a queue's limits; absent fields are kept. Returns the queue's limits now. */
  setLimits(name: string, change: QueueLimitChange, options?: CallOptions): Promise<QueueLimits>;
  /** The queues whose retention is not the default `keep`. */
  retention(options?: CallOptions): Promise<QueueRetention[]>;
  /** Sets a queue's retention, `keep` or `delete`. */
  setRetention(
    name: string,
    retention: QueueRetention['retention'],
    options?: CallOptions,
  ): Promise<QueueRetention>;
}

export interface TaskEngineClient {
  /** Enqueues one job of a typed task: the payload must match the task's schema, at compile time and before sending. */
  enqueue<S extends z.ZodType>(
    task: TaskLike<S>,
    payload: z.input<S>,
    options?: JobOptions & CallOptions,
  ): Promise<JobView>;
  /** Enqueues one job. Retried safely: the request carries its idempotency key, made here when absent. */
  enqueue(request: JobRequest, options?: CallOptions): Promise<JobView>;
  /** Up to 500 jobs in one request, all or nothing; each job keeps its own idempotency key across retries. */
  enqueueMany(requests: readonly JobRequest[], options?: CallOptions): Promise<JobView[]>;
  get(id: string, options?: CallOptions): Promise<JobView>;
  /** Cancels a queued or running job (it ends `failed` with the reason); ConflictError if it had already finished. */
  cancel(id: string, options?: CallOptions & { reason?: string }): Promise<JobView>;
  /** Polls until the job is `completed` or `failed`. */
  waitFor(id: string, options?: WaitOptions): Promise<JobView>;
  /** Resolves when the api and its database answer. */
  health(options?: CallOptions): Promise<void>;
  schedules: SchedulesClient;
  queues: QueuesClient;
}

const DEFAULT_ATTEMPT_TIMEOUT_MS = 10_000;
const DEFAULT_WAIT_TIMEOUT_MS = 60_000;
const MAX_POLL_MS = 2_000;

function validateOptions(options: ClientOptions): { base: URL; signer?: Signer } {
  let base: URL;
  try {
    base = new URL(options.url);
  } catch {
    throw new TypeError(`url must be an absolute http(s) URL, got ${JSON.stringify(options.url)}`);
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:')
    throw new TypeError(`url must be http(s), got ${base.protocol}`);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const { auth } = options;
  if (auth === 'iam') {
    const region =
      options.region ??
      regionFromHost(base.hostname) ??
      process.env.AWS_REGION ??
      process.env.AWS_DEFAULT_REGION;
    if (!region)
      throw new TypeError(
        'auth iam needs a region: pass region, or set AWS_REGION, or use an execute-api URL',
      );
    return { base, signer: sigV4Signer({ region, credentials: options.credentials }) };
  }
  if (auth === 'none') return { base };
  if (
    typeof auth === 'object' &&
    auth !== null &&
    (typeof auth.jwt === 'string' || typeof auth.jwt === 'function')
  )
    return { base };
  throw new TypeError("auth must be 'iam', 'none' or { jwt }");
}

function terminal(job: JobView): boolean {
  return job.status === 'completed' || job.status === 'failed';
}

/** The job calls (`/jobs`, `/health`): the client without its `schedules` and `queues`. */
type JobMethods = Omit<TaskEngineClient, 'schedules' | 'queues'>;

function jobMethods({ attempt, call, retryOwnEffect }: Transport): JobMethods {
  const methods: JobMethods = {
    async enqueue(
      first: TaskLike | JobRequest,
      second?: unknown,
      third?: JobOptions & CallOptions,
    ): Promise<JobView> {
      let request: JobRequest;
      let signal: AbortSignal | undefined;
      if (isTask(first)) {
        const { signal: s, ...jobOptions } = third ?? {};
        checkPayload(first, second);
        request = { ...jobOptions, type: first.type, payload: second };
        signal = s;
      } else {
        request = first;
        signal = (second as CallOptions | undefined)?.signal;
      }
      // One key per logical call, made before the first attempt: every retry sends the same one.
      const key = request.idempotencyKey ?? randomUUID();
      return (await call('POST', 'jobs', wireJob(request, key), signal)) as JobView;
    },

    async enqueueMany(requests, options = {}) {
      if (!Array.isArray(requests)) throw new TypeError('enqueueMany takes an array of job requests');
      if (requests.length === 0) return [];
      const jobs = requests.map((r) => wireJob(r, r.idempotencyKey ?? randomUUID()));
      const answer = (await call('POST', 'jobs/batch', { jobs }, options.signal)) as { jobs: JobView[] };
      return answer.jobs;
    },

    async get(id, options = {}) {
      return (await call('GET', jobPath(id), undefined, options.signal)) as JobView;
    },

    async cancel(id, options = {}) {
      const path = `${jobPath(id)}/cancel`;
      const text = JSON.stringify(options.reason === undefined ? {} : { reason: options.reason });
      // A retry after a lost answer finds the job already cancelled (409 job_terminal, status
      // failed): that is this call's own effect, so read the job back instead of failing.
      return (await retryOwnEffect(
        () => attempt('POST', path, text, options.signal),
        (err) => {
          const status = (err as ConflictError).details as { status?: string } | null;
          if (err instanceof ConflictError && status?.status === 'failed')
            return attempt('GET', jobPath(id), undefined, options.signal);
          return undefined;
        },
        options.signal,
      )) as JobView;
    },

    async waitFor(id, options = {}) {
      const timeout = options.timeout ?? DEFAULT_WAIT_TIMEOUT_MS;
      const deadline = Date.now() + timeout;
      let interval = options.intervalMs ?? 100;
      for (;;) {
        const job = await methods.get(id, { ...(options.signal ? { signal: options.signal } : {}) });
        if (terminal(job)) return job;
        if (Date.now() + interval > deadline)
          throw new WaitTimeoutError(`job ${id} is still ${job.status} after ${timeout} ms`, job);
        await sleep(interval, options.signal);
        interval = Math.min(MAX_POLL_MS, interval * 1.5);
      }
    },

    async health(options = {}) {
      await call('GET', 'health', undefined, options.signal);
    },
  } as JobMethods;
  return methods;
}

function schedulesClient({ attempt, call, retryOwnEffect }: Transport): SchedulesClient {
  const schedulePath = (name: string) => namePath('schedules', name, 'schedule');

  return {
    async put(
      first: TaskLike | ScheduleDefinition,
      second?: unknown,
      third?: CallOptions,
    ): Promise<ScheduleView> {
      let definition: ScheduleDefinition;
      let signal: AbortSignal | undefined;
      if (isTask(first)) {
        const typed = (second ?? {}) as TypedScheduleDefinition;
        checkPayload(first, typed.payload);
        definition = { ...typed, type: first.type };
        signal = third?.signal;
      } else {
        definition = first;
        signal = (second as CallOptions | undefined)?.signal;
      }
      // Safe to retry: an upsert by name. The retry of a create whose answer was lost replaces
      // the schedule with the same definition (200 instead of 201, so "created" is not reported:
      // a retry cannot know it), and an unchanged cron and time zone keep the cursor.
      return (await call('POST', 'schedules', wireSchedule(definition), signal)) as ScheduleView;
    },

    async list(options = {}) {
      const answer = (await call('GET', 'schedules', undefined, options.signal)) as {
        schedules: ScheduleView[];
      };
      return answer.schedules;
    },

    async get(name, options = {}) {
      return (await call('GET', schedulePath(name), undefined, options.signal)) as ScheduleView;
    },

    async remove(name, options = {}) {
      const path = schedulePath(name);
      // A retry after a lost answer finds the schedule gone (404 not_found): that is this call's
      // own effect (or another remover's; either way what was asked holds), so it is reported as
      // removed. A 404 with no unknown outcome before it is a NotFoundError, as on a first try.
      return (await retryOwnEffect(
        () => attempt('DELETE', path, undefined, options.signal),
        (err) =>
          err instanceof NotFoundError && err.code === 'not_found' ? { name, removed: true } : undefined,
        options.signal,
      )) as { name: string; removed: true };
    },

    // Safe to retry: each sets the flag to a fixed value, and resuming a schedule already
    // enabled leaves its cursor alone (schedule_set_enabled resets it only on a real resume).
    async pause(name, options = {}) {
      return (await call('POST', `${schedulePath(name)}/pause`, undefined, options.signal)) as ScheduleView;
    },

    async resume(name, options = {}) {
      return (await call('POST', `${schedulePath(name)}/resume`, undefined, options.signal)) as ScheduleView;
    },
  } as SchedulesClient;
}

function queuesClient({ call }: Transport): QueuesClient {
  return {
    async limits(options = {}) {
      const answer = (await call('GET', 'queues/limits', undefined, options.signal)) as {
        queues: QueueLimits[];
      };
      return answer.queues;
    },

    async setLimits(name, change, options = {}) {
      const path = `${namePath('queues', name, 'queue')}/limits`;
      if (change === null || typeof change !== 'object')
        throw new TypeError('setLimits takes { maxRunning, rate, burst }');
      const body: Record<string, unknown> = {};
      for (const f of ['maxRunning', 'rate', 'burst'] as const)
        if (change[f] !== undefined) body[f] = change[f];
      // Safe to retry: the values are absolute (set, or null to remove), never increments, so
      // a second application leaves the queue as the first did.
      return (await call('POST', path, body, options.signal)) as QueueLimits;
    },

    async retention(options = {}) {
      const answer = (await call('GET', 'queues/retention', undefined, options.signal)) as {
        queues: QueueRetention[];
      };
      return answer.queues;
    },

    async setRetention(name, retention, options = {}) {
      const path = `${namePath('queues', name, 'queue')}/retention`;
      if (retention !== 'keep' && retention !== 'delete')
        throw new TypeError(`setRetention takes 'keep' or 'delete', got ${JSON.stringify(retention)}`);
      // Safe to retry: the value is absolute.
      return (await call('POST', path, { retention }, options.signal)) as QueueRetention;
    },
  };
}

export function createClient(options: ClientOptions): TaskEngineClient {
  const { base, signer } = validateOptions(options);
  const policy = retryPolicy(options.retry);
  const attemptTimeoutMs = options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
  if (!(attemptTimeoutMs > 0)) throw new TypeError('attemptTimeoutMs must be > 0');
  const fetchImpl: FetchLike = options.fetch ?? (globalThis.fetch as unknown as FetchLike);
  if (typeof fetchImpl !== 'function') throw new TypeError('no fetch: pass options.fetch');
  const transport = createTransport({
    base,
    auth: options.auth,
    ...(signer ? { signer } : {}),
    fetch: fetchImpl,
    policy,
    attemptTimeoutMs,
  });
  // One object, as before the split: waitFor polls through this same object's `get`.
  return Object.assign(jobMethods(transport), {
    schedules: schedulesClient(transport),
    queues: queuesClient(transport),
  });
}
