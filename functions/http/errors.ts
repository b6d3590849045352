import type middy from '@middy/core';
import type { EngineLogger } from '../engine/consumer.ts';
import {
  ConflictError,
  DatabaseUnavailableError,
  NotFoundError,
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

/** The only place engine errors become HTTP statuses. Anything unknown is a 500 without details. */
export function mapError(err: unknown): Mapped {
  const e = err as { statusCode?: number; message?: string; cause?: { package?: string } };
  if (err instanceof HttpError)
    return { statusCode: err.statusCode, code: err.code, message: err.message, details: err.details };
  if (err instanceof UnknownTaskTypeError)
    return { statusCode: 422, code: err.code, message: err.message, details: err.details };
  if (err instanceof ValidationError) {
    return {
      statusCode: err.code === 'invalid_payload' ? 422 : 400,
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
  if (err instanceof DatabaseUnavailableError) {
    return {
      statusCode: 503,
      code: 'database_unavailable',
      message: 'the database is unavailable; nothing was stored, retry later',
      headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
    };
  }
  // @middy/http-json-body-parser: 415 for both a wrong content type and malformed JSON.
  if (e?.cause?.package === '@middy/http-json-body-parser') {
    if (e.message === 'Unsupported Media Type') {
      return {
        statusCode: 415,
        code: 'unsupported_media_type',
        message: 'Content-Type must be application/json',
      };
    }
    return { statusCode: 400, code: 'invalid_json', message: 'the body is not valid JSON' };
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
      const mapped = mapError(request.error);
      if (mapped.statusCode >= 500 && mapped.statusCode !== 503)
        logger.error('unhandled api error', { error: request.error });
      else if (mapped.statusCode === 503) {
        onDbUnavailable?.(request.event as never);
        logger.warn('database unavailable', { error: request.error });
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
