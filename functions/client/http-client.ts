import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import { isName, NAMES, SCHEDULE_FIELDS } from '../engine/schema.ts';
import {
  ApiError,
  ConflictError,
  errorFromResponse,
  NotFoundError,
  UnavailableError,
  ValidationError,
  WaitTimeoutError,
} from './errors.ts';
import { type RetryOptions, retryPolicy, sleep, withRetries } from './retry.ts';
import {
  type Credentials,
  type CredentialsProvider,
  regionFromHost,
  type Signer,
  sigV4Signer,
} from './sigv4.ts';
import {
  isTask,
  type JobOptions,
  type JobRequest,
  type JobView,
  type QueueLimitChange,
  type QueueLimits,
  type ScheduleDefinition,
  type ScheduleView,
  type TaskLike,
  type TypedScheduleDefinition,
  taskOf,
} from './types.ts';

/** The part of the WHATWG fetch the client uses: global fetch fits, and so does undici's or a test double. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal },
) => Promise<{
  status: number;
  ok: boolean;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;

export type Auth = 'iam' | 'none' | { jwt: string | (() => string | Promise<string>) };

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

/** The queue limit calls (`/queues`). */
export interface QueuesClient {
  /** The queues that have a limit. */
  limits(options?: CallOptions): Promise<QueueLimits[]>;
  /** Sets (or, with null, removes) a queue's limits; absent fields are kept. Returns the queue's limits now. */
  setLimits(name: string, change: QueueLimitChange, options?: CallOptions): Promise<QueueLimits>;
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
/** Refused before any byte was sent: the request cannot have been stored. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

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

/**
 * `schedules/{name}` or `queues/{name}`, checked before sending against the request schema's
 * name rule: a name outside it would be refused anyway, and `.` or `..` would be resolved away
 * by URL parsing (even percent-encoded) and address another route.
 */
function namePath(prefix: 'schedules' | 'queues', name: string, kind: 'schedule' | 'queue'): string {
  if (!isName(kind, name)) {
    throw new ValidationError(
      undefined,
      'invalid_request',
      `${kind} name must be ${NAMES[kind].rule}, got ${JSON.stringify(name)}`,
      { details: { field: 'name' } },
    );
  }
  return `${prefix}/${encodeURIComponent(name)}`;
}

/** A schedule as the API takes it: known fields only (the API refuses any other), undefined ones left out. */
function wireSchedule(definition: ScheduleDefinition): Record<string, unknown> {
  if (definition === null || typeof definition !== 'object')
    throw new TypeError('a schedule definition must be an object');
  const body: Record<string, unknown> = {};
  for (const f of SCHEDULE_FIELDS) if (definition[f] !== undefined) body[f] = definition[f];
  return body;
}

/** The request as the API takes it: known fields only, dates as ISO text. */
function wireJob(request: JobRequest, idempotencyKey: string): Record<string, unknown> {
  const task = taskOf(request);
  if (task) checkPayload(task, request.payload);
  const body: Record<string, unknown> = { type: request.type, payload: request.payload ?? null };
  const fields = ['queue', 'priority', 'delaySeconds', 'maxAttempts'] as const;
  for (const f of fields) if (request[f] !== undefined) body[f] = request[f];
  if (request.runAt !== undefined)
    body.runAt = request.runAt instanceof Date ? request.runAt.toISOString() : request.runAt;
  body.idempotencyKey = idempotencyKey;
  return body;
}

/** The task's schema, checked here as the api will check it (same paths), before anything is sent. */
function checkPayload(task: TaskLike, payload: unknown): void {
  const parsed = task.schema.safeParse(payload ?? null);
  if (parsed.success) return;
  const issues = parsed.error.issues.map((i) => ({
    path: `payload${i.path.length ? '.' : ''}${i.path.map(String).join('.')}`,
    message: i.message,
  }));
  throw new ValidationError(
    undefined,
    'invalid_payload',
    issues.map((i) => `${i.path}: ${i.message}`).join('; '),
    {
      details: { type: task.type, issues },
    },
  );
}

function terminal(job: JobView): boolean {
  return job.status === 'completed' || job.status === 'failed';
}

export function createClient(options: ClientOptions): TaskEngineClient {
  const { base, signer } = validateOptions(options);
  const policy = retryPolicy(options.retry);
  const attemptTimeoutMs = options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
  if (!(attemptTimeoutMs > 0)) throw new TypeError('attemptTimeoutMs must be > 0');
  const fetchImpl: FetchLike = options.fetch ?? (globalThis.fetch as unknown as FetchLike);
  if (typeof fetchImpl !== 'function') throw new TypeError('no fetch: pass options.fetch');
  const auth = options.auth;

  async function headersFor(
    method: string,
    url: URL,
    body: string | undefined,
  ): Promise<Record<string, string>> {
    const headers: Record<string, string> = { accept: 'application/json' };
    // On every change, with a body or not: the local engine (`npm start`) refuses a POST or
    // DELETE without a JSON Content-Type (tools/loopback.ts, its cross-site guard).
    if (body !== undefined || (method !== 'GET' && method !== 'HEAD'))
      headers['content-type'] = 'application/json';
    if (signer) return signer({ method, url, headers, body });
    if (typeof auth === 'object') {
      const token = typeof auth.jwt === 'function' ? await auth.jwt() : auth.jwt;
      headers.authorization = `Bearer ${token}`;
    }
    return headers;
  }

  function networkError(err: unknown, signal: AbortSignal | undefined, timeout: AbortSignal): unknown {
    if (signal?.aborted) return signal.reason;
    if (timeout.aborted) {
      return new UnavailableError(undefined, 'timeout', `no answer within ${attemptTimeoutMs} ms`, {
        cause: err,
        outcomeUnknown: true,
      });
    }
    const code = (err as { cause?: { code?: string } })?.cause?.code ?? (err as { code?: string })?.code;
    const sent = !(code && NOT_SENT.has(code));
    return new UnavailableError(
      undefined,
      sent ? 'connection_lost' : 'connection_failed',
      `${(err as Error)?.message ?? String(err)}${code ? ` (${code})` : ''}`,
      { cause: err, outcomeUnknown: sent },
    );
  }

  /** One attempt: sign, send, read the whole answer; a non-2xx answer throws its error class. */
  async function attempt(method: string, path: string, text: string | undefined, signal?: AbortSignal) {
    const url = new URL(path, base);
    const timeout = AbortSignal.timeout(attemptTimeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let status: number;
    let answer: string;
    let retryAfter: string | null;
    try {
      const headers = await headersFor(method, url, text);
      const res = await fetchImpl(url.toString(), {
        method,
        headers,
        ...(text === undefined ? {} : { body: text }),
        signal: combined,
      });
      status = res.status;
      retryAfter = res.headers.get('retry-after');
      answer = await res.text();
    } catch (err) {
      if (err instanceof ApiError) throw err;
      throw networkError(err, signal, timeout);
    }
    if (status < 200 || status > 299) throw errorFromResponse(status, answer, retryAfter);
    try {
      return answer === '' ? undefined : (JSON.parse(answer) as unknown);
    } catch (err) {
      throw new ApiError(status, 'invalid_response', `HTTP ${status} with a body that is not JSON`, {
        cause: err,
      });
    }
  }

  function call(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    return withRetries(() => attempt(method, path, text, signal), policy, signal);
  }

  /**
   * A change retried after a lost answer may find its own effect already there: once an attempt's
   * outcome was unknown, `ownEffect` may turn the refusal that follows into the call's answer
   * (undefined: it is not this call's effect, so it is thrown as it came).
   */
  function retryOwnEffect(
    send: () => Promise<unknown>,
    ownEffect: (err: unknown) => unknown,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    let mayHaveApplied = false;
    return withRetries(
      async () => {
        try {
          return await send();
        } catch (err) {
          if (err instanceof UnavailableError && err.outcomeUnknown) mayHaveApplied = true;
          const answer = mayHaveApplied ? ownEffect(err) : undefined;
          if (answer === undefined) throw err;
          return answer;
        }
      },
      policy,
      signal,
    );
  }

  const jobPath = (id: string) => {
    if (typeof id !== 'string' || !/^[1-9][0-9]{0,18}$/.test(id)) {
      throw new ValidationError(
        undefined,
        'invalid_id',
        `job id must be a positive integer, got ${JSON.stringify(id)}`,
        {
          details: { path: 'id' },
        },
      );
    }
    return `jobs/${id}`;
  };

  const schedulePath = (name: string) => namePath('schedules', name, 'schedule');

  const schedules: SchedulesClient = {
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

  const queues: QueuesClient = {
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
  };

  const client: TaskEngineClient = {
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
        const job = await client.get(id, { ...(options.signal ? { signal: options.signal } : {}) });
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

    schedules,
    queues,
  } as TaskEngineClient;
  return client;
}
