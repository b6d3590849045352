import { type EngineErrorOptions, TaskEngineError } from '../engine/errors.ts';
import { mapError } from '../http/errors.ts';

/**
 * The client's error family: one class per kind of answer, whichever way the job was sent (HTTP
 * or the caller's own transaction). Each carries the API's `{ error: { code, message, details } }`
 * as it came, plus the HTTP status when there was one.
 */
export class ApiError extends TaskEngineError {
  override name = 'ApiError';
  /** The HTTP status; undefined when the error was raised without a request (transactional enqueue). */
  readonly status: number | undefined;
  constructor(status: number | undefined, code: string, message: string, options?: EngineErrorOptions) {
    super(code, message, options);
    this.status = status;
  }
}

/**
 * 400, 415, 422: the request is wrong and sending it again will not help. Schedules: a cron
 * that does not parse is `invalid_cron` (field `cron`), an unknown time zone `invalid_timezone`
 * (field `timezone`); bad queue limits are `validation_error` (the API names no field there).
 */
export class ValidationError extends ApiError {
  override name = 'ValidationError';
  /** The field the API named (`payload.to`, `jobs.3.priority`, …), when it named one. */
  readonly field: string | undefined;
  constructor(status: number | undefined, code: string, message: string, options?: EngineErrorOptions) {
    super(status, code, message, options);
    this.field = fieldOf(options?.details);
  }
}

// The classes below take ApiError's arguments as they are: each only names its kind.

/** 413: a payload over the api's MAX_PAYLOAD_BYTES, or a batch over 500 jobs. */
export class PayloadTooLargeError extends ValidationError {
  override name = 'PayloadTooLargeError';
}

/** 404: no such job or schedule (`not_found`). */
export class NotFoundError extends ApiError {
  override name = 'NotFoundError';
}

/**
 * 409: an idempotency key used for a different request (`idempotency_conflict`), a cancel of a
 * finished job (`job_terminal`), or a put or remove of a schedule defined in code
 * (`schedule_defined_in_code`: change it where defineSchedule is).
 */
export class ConflictError extends ApiError {
  override name = 'ConflictError';
}

/** 401, 403: API Gateway refused the credentials or the signature. */
export class AuthError extends ApiError {
  override name = 'AuthError';
}

/**
 * The engine could not be reached or did not answer in time, after the client's retries ran out.
 * `outcomeUnknown` is false only when every attempt was answered "nothing was done" (503
 * `database_unavailable`, 429); otherwise a request may have been stored. With an idempotency
 * key (the client always sends one) sending the same request again is safe either way.
 */
export class UnavailableError extends ApiError {
  override name = 'UnavailableError';
  readonly outcomeUnknown: boolean;
  readonly retryAfterSeconds: number | undefined;
  /** Attempts made before giving up (1 when retries were not allowed). */
  attempts = 1;
  constructor(
    status: number | undefined,
    code: string,
    message: string,
    options: EngineErrorOptions & { outcomeUnknown: boolean; retryAfterSeconds?: number },
  ) {
    super(status, code, message, options);
    this.outcomeUnknown = options.outcomeUnknown;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** `waitFor` saw no terminal state within its timeout; `job` is the last state read. */
export class WaitTimeoutError extends TaskEngineError {
  override name = 'WaitTimeoutError';
  readonly job: unknown;
  constructor(message: string, job: unknown) {
    super('wait_timeout', message, { details: { job } });
    this.job = job;
  }
}

function fieldOf(details: unknown): string | undefined {
  const d = details as
    | { path?: unknown; field?: unknown; issues?: Array<{ path?: unknown }> }
    | null
    | undefined;
  const path = d?.path ?? d?.field ?? d?.issues?.[0]?.path;
  return typeof path === 'string' && path !== '' ? path : undefined;
}

export interface ErrorBody {
  code: string;
  message: string;
  details?: unknown;
}

/** The answers whose class takes nothing but the API's code, message and details. */
const CLASS_OF_STATUS: Partial<Record<number, typeof ApiError>> = {
  400: ValidationError,
  415: ValidationError,
  422: ValidationError,
  413: PayloadTooLargeError,
  401: AuthError,
  403: AuthError,
  404: NotFoundError,
  409: ConflictError,
};
const UNAVAILABLE = new Set([429, 502, 503, 504]);

/**
 * An API answer as its error class: the table above, UnavailableError for a throttle or a
 * 502/503/504, else ApiError. `local`: the error was raised in the
 * caller's process (transactional enqueue), so it reports no HTTP status.
 */
export function errorFor(
  statusCode: number,
  body: ErrorBody,
  options: ErrorOptions & { retryAfterSeconds?: number; local?: boolean } = {},
): ApiError {
  const { code, message } = body;
  const { local, ...rest } = options;
  const opts = { ...rest, details: body.details ?? null };
  const status = local ? undefined : statusCode;
  const Class = CLASS_OF_STATUS[statusCode];
  if (Class) return new Class(status, code, message, opts);
  if (!UNAVAILABLE.has(statusCode)) return new ApiError(status, code, message, opts);
  // Only the engine's own "nothing was stored" and a throttle before the function ran are
  // known outcomes; API Gateway's bare 502/503/504 may follow a commit.
  return new UnavailableError(status, code, message, {
    ...opts,
    outcomeUnknown: !(code === 'database_unavailable' || statusCode === 429),
  });
}

/**
 * An HTTP answer as an error. The engine's body is `{ error: { code, message, details } }`; API
 * Gateway's own refusals (403 bad signature, 429, 5xx before the function ran) are `{ message }`.
 */
export function errorFromResponse(status: number, text: string, retryAfter: string | null): ApiError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const shaped = (parsed as { error?: Partial<ErrorBody> } | undefined)?.error;
  const gateway = (parsed as { message?: unknown; Message?: unknown } | undefined) ?? {};
  const message =
    (typeof shaped?.message === 'string' && shaped.message) ||
    (typeof gateway.message === 'string' && gateway.message) ||
    (typeof gateway.Message === 'string' && gateway.Message) ||
    `HTTP ${status}`;
  const code = typeof shaped?.code === 'string' ? shaped.code : `http_${status}`;
  const seconds = retryAfter === null ? Number.NaN : Number(retryAfter);
  return errorFor(
    status,
    { code, message, details: shaped?.details },
    Number.isFinite(seconds) && seconds >= 0 ? { retryAfterSeconds: seconds } : {},
  );
}

/**
 * An engine error thrown in the caller's transaction, as the class the API's answer to it would
 * map to (through the api's own status table), so both ways throw the same errors. Anything
 * else (the caller's database errors) passes through unchanged.
 */
export function fromEngineError(err: unknown): unknown {
  if (!(err instanceof TaskEngineError) || err instanceof ApiError) return err;
  const mapped = mapError(err);
  if (mapped.statusCode >= 500) return err;
  return errorFor(
    mapped.statusCode,
    { code: mapped.code, message: mapped.message, details: mapped.details },
    { cause: err, local: true },
  );
}
