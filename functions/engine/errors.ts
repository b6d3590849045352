/** What an engine error takes besides its code and message: the cause, and details for the caller. */
export type EngineErrorOptions = ErrorOptions & { details?: unknown };

/**
 * One error family for the engine. Subclasses set `name` and accept ErrorOptions so the
 * cause travels with them; HTTP status mapping happens only at the edge (functions/api.ts).
 */
export class TaskEngineError extends Error {
  readonly code: string;
  readonly details: unknown;
  constructor(code: string, message: string, options?: EngineErrorOptions) {
    super(message, options);
    this.name = 'TaskEngineError';
    this.code = code;
    this.details = options?.details;
  }
}

/**
 * The base of an error kind whose code is fixed: it sets `name` and the code, and takes the
 * message and options as they are (`class NotFoundError extends fixedCode('NotFoundError', 'not_found') {}`).
 */
function fixedCode(name: string, code: string) {
  return class extends TaskEngineError {
    override name = name;
    constructor(message: string, options?: EngineErrorOptions) {
      super(code, message, options);
    }
  };
}

/** Thrown by a task to end its job `failed` at once, without retries. */
export class NonRetryableError extends fixedCode('NonRetryableError', 'non_retryable') {}

/** A fenced statement matched nothing: the lease expired, the job was reclaimed or changed by hand. */
export class LeaseLostError extends TaskEngineError {
  override name = 'LeaseLostError';
  readonly jobIds: string[];
  constructor(jobIds: string[], options?: ErrorOptions) {
    super('lease_lost', `lease lost for job(s) ${jobIds.join(', ')}`, options);
    this.jobIds = jobIds;
  }
}

/** A request the engine refuses as it is (`validation_error` or a finer code): a 400, or 422 at the edge. */
export class ValidationError extends TaskEngineError {
  override name = 'ValidationError';
  constructor(message: string, options?: ErrorOptions & { details?: unknown; code?: string }) {
    super(options?.code ?? 'validation_error', message, options);
  }
}

/** No task of that type is registered here (a 422 at the edge). */
export class UnknownTaskTypeError extends TaskEngineError {
  override name = 'UnknownTaskTypeError';
  /** `index`: the job's place in a batch, named in the message and details. */
  constructor(type: string, index?: number) {
    super(
      'unknown_task_type',
      `${index === undefined ? '' : `jobs.${index}.type: `}unknown task type: ${JSON.stringify(type)}`,
      { details: index === undefined ? { type } : { type, index, path: `jobs.${index}.type` } },
    );
  }
}

/** No such job or schedule, or a job the caller may not see (a 404 at the edge). */
export class NotFoundError extends fixedCode('NotFoundError', 'not_found') {}

/**
 * The request contradicts what is stored (a 409 at the edge): the code says which conflict,
 * e.g. `idempotency_conflict`, `job_terminal`. Takes TaskEngineError's arguments as they are.
 */
export class ConflictError extends TaskEngineError {
  override name = 'ConflictError';
}

/** A payload over MAX_PAYLOAD_BYTES (a 413 at the edge). */
export class PayloadTooLargeError extends fixedCode('PayloadTooLargeError', 'payload_too_large') {}

/** The database could not be reached or dropped the connection; the caller may retry. */
export class DatabaseUnavailableError extends TaskEngineError {
  override name = 'DatabaseUnavailableError';
  constructor(message: string, options?: ErrorOptions & { code?: string }) {
    super(options?.code ?? 'database_unavailable', message, options);
  }
}

/**
 * The connection was lost after the statement was sent: it may have committed or not. Still a
 * DatabaseUnavailableError (retryable), but no caller may say "nothing was stored".
 */
export class OutcomeUnknownError extends DatabaseUnavailableError {
  override name = 'OutcomeUnknownError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, { ...options, code: 'outcome_unknown' });
  }
}

/** Thrown by the migration runner: changed checksum, destructive file without marker, bad name. */
export class MigrationError extends fixedCode('MigrationError', 'migration_error') {}

/** Normalises anything thrown into an Error (graphile-worker's coerceError). */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === 'string') return new Error(thrown);
  try {
    return new Error(`non-error thrown: ${JSON.stringify(thrown)}`);
  } catch {
    return new Error(`non-error thrown: ${String(thrown)}`);
  }
}
