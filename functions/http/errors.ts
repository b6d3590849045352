import type middy from '@middy/core';
import type { EngineLogger } from '../engine/consumer.ts';
import {
  ConflictError,
  DatabaseUnavailableError,
  NotFoundError,
  OutcomeUnknownError,
  PayloadTooLargeError,
  TaskEngineError,
  UnknownTaskTypeError,
  ValidationError,
} from '../engine/errors.ts';

export class HttpError extends TaskEngineError {
  readonly statusCode: number;
  constructor(statusCode: number, code: string, message: string, details?: unknown) {
    super(code, message, { details });
    this.name = 'HttpError';
    this.statusCode = statusCode;
  }
}

/** Seconds a client should wait before retrying after a 503. */
export const RETRY_AFTER_SECONDS = 5;

interface Mapped {
  statusCode: number;
  code: string;
  message: string;
  details?: unknown;
  headers?: Record<string, string>;
}

/** ValidationError codes that are 422 (well-formed but not acceptable for this task); the rest are 400. */
const UNPROCESSABLE = new Set(['invalid_payload', 'task_timeout_exceeds_invocation']);

/** The only place engine errors become HTTP statuses. Anything unknown is a 500 without details. */
export function mapError(err: unknown, opts: { reading?: boolean } = {}): Mapped {
  if (err instanceof HttpError)
    return { statusCode: err.statusCode, code: err.code, message: err.message, details: err.details };
  if (err instanceof UnknownTaskTypeError)
    return { statusCode: 422, code: err.code, message: err.message, details: err.details };
  if (err instanceof ValidationError) {
    return {
      statusCode: UNPROCESSABLE.has(err.code) ? 422 : 400,
      code: err.code,
      message: err.message,
      details: err.details,
    };
  }
  if (err instanceof PayloadTooLargeError)
    return { statusCode: 413, code: err.code, message: err.message, details: err.details };
  if (err instanceof NotFoundError)
    return { statusCode: 404, code: err.code, message: err.message, details: err.details };
  if (err instanceof ConflictError)
    return { statusCode: 409, code: err.code, message: err.message, details: err.details };
  // A read that lost its connection changed nothing, whenever it was lost.
  if (err instanceof OutcomeUnknownError && !opts.reading) {
    return {
      statusCode: 503,
      code: 'outcome_unknown',
      message:
        'the connection to the database was lost after the request was sent: it may or may not have been stored; retry with the same Idempotency-Key (safe: a stored job is returned, not duplicated), or read the job before retrying without one',
      headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
    };
  }
  if (err instanceof DatabaseUnavailableError) {
    return {
      statusCode: 503,
      code: 'database_unavailable',
      message: 'the database is unavailable; nothing was stored, retry later',
      headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
    };
  }
  return { statusCode: 500, code: 'internal_error', message: 'internal error' };
}

/**
 * Shapes every error as `{ error: { code, message, details } }` and hands it to
 * http-error-handler with `expose`, so no stack or internal message reaches the client.
 */
export function errorShape(
  logger: EngineLogger,
  onDbUnavailable?: (event: never) => void,
): middy.MiddlewareObj {
  return {
    onError: async (request) => {
      const method = (request.event as { requestContext?: { http?: { method?: string } } })?.requestContext
        ?.http?.method;
      const mapped = mapError(request.error, { reading: method === 'GET' || method === 'HEAD' });
      if (mapped.statusCode >= 500 && mapped.statusCode !== 503)
        logger.error('unhandled api error', { error: request.error });
      else if (mapped.statusCode === 503) {
        onDbUnavailable?.(request.event as never);
        logger.warn(mapped.code === 'outcome_unknown' ? 'outcome unknown' : 'database unavailable', {
          error: request.error,
        });
      }
      const body = JSON.stringify({
        error: { code: mapped.code, message: mapped.message, details: mapped.details ?? null },
      });
      const httpErr = Object.assign(new Error(body), {
        statusCode: mapped.statusCode,
        expose: true,
        headers: { ...mapped.headers, 'Cache-Control': 'no-store' },
      });
      request.error = httpErr;
    },
  };
}
