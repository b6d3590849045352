import { UnavailableError } from './errors.ts';

export interface RetryOptions {
  /** Attempts per call, the first included; 1 turns retries off. */
  maxAttempts?: number;
  /** The first wait's upper bound; it doubles per retry (full jitter: the wait is uniform below it). */
  baseDelayMs?: number;
  /** The largest single wait, a server's Retry-After included. */
  maxDelayMs?: number;
  /** No attempt starts later than this after the call began. */
  deadlineMs?: number;
}

/**
 * 8 attempts within 30 s: the api answers 503 with Retry-After 5 while the database is away,
 * and an RDS failover takes 20-30 s, so a call rides out one failover but not an outage. The
 * deadline stays under API Gateway's 30 s integration limit per attempt times a few, so a caller
 * in a Lambda function still has time left to answer its own client.
 */
export const RETRY_DEFAULTS: Required<RetryOptions> = {
  maxAttempts: 8,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
  deadlineMs: 30_000,
};

export function retryPolicy(options: RetryOptions = {}): Required<RetryOptions> {
  const policy = { ...RETRY_DEFAULTS, ...stripUndefined(options) };
  for (const [name, value] of Object.entries(policy)) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new TypeError(`retry.${name} must be a finite number >= 0, got ${String(value)}`);
    }
  }
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) {
    throw new TypeError(`retry.maxAttempts must be an integer >= 1, got ${policy.maxAttempts}`);
  }
  return policy;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"), at least Retry-After. */
export function backoffMs(
  retry: number,
  policy: Required<RetryOptions>,
  retryAfterSeconds?: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  const jittered = random() * cap;
  const floor = retryAfterSeconds === undefined ? 0 : Math.min(policy.maxDelayMs, retryAfterSeconds * 1000);
  return Math.max(jittered, floor);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `attempt` until it succeeds, throws something other than an UnavailableError, or the
 * policy runs out. The error thrown then says whether any attempt's outcome was unknown.
 */
export async function withRetries<T>(
  attempt: (n: number) => Promise<T>,
  policy: Required<RetryOptions>,
  signal?: AbortSignal,
): Promise<T> {
  const started = Date.now();
  let outcomeUnknown = false;
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (!(err instanceof UnavailableError)) throw err;
      outcomeUnknown ||= err.outcomeUnknown;
      const wait = backoffMs(n, policy, err.retryAfterSeconds);
      const late = Date.now() - started + wait > policy.deadlineMs;
      if (n >= policy.maxAttempts || late || signal?.aborted) {
        if (n === 1) throw err;
        const final = new UnavailableError(
          err.status,
          err.code,
          `${err.message} (gave up after ${n} attempt${n === 1 ? '' : 's'})`,
          {
            cause: err,
            details: err.details,
            outcomeUnknown,
            ...(err.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: err.retryAfterSeconds }),
          },
        );
        final.attempts = n;
        throw final;
      }
      await sleep(wait, signal);
    }
  }
}
