/**
 * One error family for the engine. Subclasses set `name` and accept ErrorOptions so the
 * cause travels with them; HTTP status mapping happens only at the edge (functions/api.ts).
 */
export class TaskEngineError extends Error {
  readonly code: string;
  readonly details: unknown;
  constructor(code: string, message: string, options?: ErrorOptions & { details?: unknown }) {
    super(message, options);
    this.name = 'TaskEngineError';
    this.code = code;
    this.details = options?.details;
  }
}

/** Thrown by a task to end its job `failed` at once, without retries. */
export class NonRetryableError extends TaskEngineError {
  constructor(message: string, options?: ErrorOptions & { details?: unknown }) {
    super('non_retryable', message, options);
    this.name = 'NonRetryableError';
  }
}

/** A fenced statement matched nothing: the lease expired, the job was reclaimed or changed by hand. */
export class LeaseLostError extends TaskEngineError {
  readonly jobIds: string[];
  constructor(jobIds: string[], options?: ErrorOptions) {
    super('lease_lost', `lease lost for job(s) ${jobIds.join(', ')}`, options);
    this.name = 'LeaseLostError';
    this.jobIds = jobIds;
  }
}

export class ValidationError extends TaskEngineError {
  constructor(message: string, options?: ErrorOptions & { details?: unknown; code?: string }) {
    super(options?.code ?? 'validation_error', message, options);
    this.name = 'ValidationError';
  }
}

export class UnknownTaskTypeError extends TaskEngineError {
  /** `index`: the job's place in a batch, named in the message and details. */
  constructor(type: string, index?: number) {
    super(
      'unknown_task_type',
      `${index === undefined ? '' : `jobs.${index}.type: `}unknown task type: ${JSON.stringify(type)}`,
      { details: index === undefined ? { type } : { type, index, path: `jobs.${index}.type` } },
    );
    this.name = 'UnknownTaskTypeError';
  }
}

export class NotFoundError extends TaskEngineError {
  constructor(message: string, options?: ErrorOptions & { details?: unknown }) {
    super('not_found', message, options);
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends TaskEngineError {
  constructor(code: string, message: string, options?: ErrorOptions & { details?: unknown }) {
    super(code, message, options);
    this.name = 'ConflictError';
  }
}

export class PayloadTooLargeError extends TaskEngineError {
  constructor(message: string, options?: ErrorOptions & { details?: unknown }) {
    super('payload_too_large', message, options);
    this.name = 'PayloadTooLargeError';
  }
}

/** The database could not be reached or dropped the connection; the caller may retry. */
export class DatabaseUnavailableError extends TaskEngineError {
  constructor(message: string, options?: ErrorOptions & { code?: string }) {
    super(options?.code ?? 'database_unavailable', message, options);
    this.name = 'DatabaseUnavailableError';
  }
}

/**
 * The connection was lost after the statement was sent: it may have committed or not. Still a
 * DatabaseUnavailableError (retryable), but no caller may say "nothing was stored".
 */
export class OutcomeUnknownError extends DatabaseUnavailableError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, { ...options, code: 'outcome_unknown' });
    this.name = 'OutcomeUnknownError';
  }
}

/** Thrown by the migration runner: changed checksum, destructive file without marker, bad name. */
export class MigrationError extends TaskEngineError {
  constructor(message: string, options?: ErrorOptions & { details?: unknown }) {
    super('migration_error', message, options);
    this.name = 'MigrationError';
  }
}

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
