import { CommanderError } from 'commander';
import {
  ConflictError,
  DatabaseUnavailableError,
  MigrationError,
  NotFoundError,
  TaskEngineError,
  UnknownTaskTypeError,
  ValidationError,
} from '../../functions/engine/index.ts';
import { isAuthFailure, sqlState } from '../../functions/platform/db.ts';

/** The documented exit codes (docs/RUNBOOK.md). */
export const EXIT = {
  ok: 0,
  checkFailed: 1,
  usage: 2,
  notFoundOrConflict: 3,
  databaseUnreachable: 4,
} as const;

/** Bad arguments: ids, durations, JSON, a bulk change without --yes. */
export class UsageError extends TaskEngineError {
  constructor(message: string) {
    super('usage', message);
    this.name = 'UsageError';
  }
}

/** A check (health, preflight) failed; the report was already printed. */
export class CheckFailedError extends TaskEngineError {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT.checkFailed) {
    super('check_failed', message);
    this.name = 'CheckFailedError';
    this.exitCode = exitCode;
  }
}

/** Some targets were missing or in the wrong state; the report was already printed. */
export class PartialFailureError extends ConflictError {
  constructor(message: string) {
    super('partial', message);
  }
}

// SQLSTATEs after which the database cannot be used at all from here: bad credentials, no such
// database. For an operator these mean "unreachable" as much as a refused connection does.
const UNUSABLE_SQLSTATES = new Set(['3D000']);

export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) {
    return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (err instanceof CheckFailedError) return err.exitCode;
  if (err instanceof DatabaseUnavailableError || isAuthFailure(err)) return EXIT.databaseUnreachable;
  const state = sqlState(err);
  if (state !== undefined && UNUSABLE_SQLSTATES.has(state)) return EXIT.databaseUnreachable;
  if (err instanceof UsageError || err instanceof ValidationError || err instanceof UnknownTaskTypeError)
    return EXIT.usage;
  if (err instanceof NotFoundError || err instanceof ConflictError) return EXIT.notFoundOrConflict;
  if (err instanceof Error && err.name === 'ConfigError') return EXIT.usage;
  if (err instanceof MigrationError) return EXIT.checkFailed;
  return EXIT.checkFailed;
}

/** One line, no stack: what an operator at 3 a.m. needs, and what a script can grep. */
export function errorLine(err: unknown): string {
  const state = sqlState(err);
  let message = err instanceof Error ? err.message : String(err);
  if (state === '42P01') message = `${message} (schema not migrated? run: taskctl migrate)`;
  return message.replace(/\s*\n\s*/g, ' ');
}
