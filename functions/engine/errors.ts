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
  constructor(type: string) {
    super('unknown_task_type', `unknown task type: ${JSON.stringify(type)}`, { details: { type } });
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
  constructor(message: string, options?: ErrorOptions) {
    super('database_unavailable', message, options);
    this.name = 'DatabaseUnavailableError';
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
