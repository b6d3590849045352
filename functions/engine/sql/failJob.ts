import type { Queryable } from '../queryable.ts';
import type { JobStatus, Lease } from '../types.ts';
import { retryOnSerializationFailure } from './serializationRetry.ts';

export interface Failure extends Lease {
  error: { message: string; name: string; stack?: string | undefined; attempt: number; worker: string };
  /** NonRetryableError: end `failed` whatever attempts remain. */
  permanent: boolean;
  backoffBaseSeconds: number;
  maxBackoffSeconds: number;
}

export interface FailOutcome {
  status: JobStatus;
  runAt: Date;
  attempts: number;
}

/** NUL, and a UTF-16 surrogate without its other half: text that jsonb (and PostgreSQL text) cannot hold. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is the character to find.
const UNSTORABLE_CHARS = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * `value` as text PostgreSQL can store: NUL and lone surrogates become U+FFFD, the rest is kept.
 * A non-string (an error whose message is an object) is turned into one first.
 */
export function storableText(value: unknown): string {
  let s: string;
  if (typeof value === 'string') s = value;
  else {
    try {
      s = String(value);
    } catch {
      s = Object.prototype.toString.call(value);
    }
  }
  return s.replace(UNSTORABLE_CHARS, '\uFFFD');
}

/**
 * Records a failed attempt, fenced: `jobs_fail` of migration 0008 (a SECURITY DEFINER function:
 * the consumer role cannot update jobs itself). Retryable with attempts left: back to `queued`
 * after an exponential backoff computed in SQL, base·2^(attempt-1) capped at the maximum, with
 * equal jitter (half fixed, half random) and never below the base. Otherwise `failed`.
 * The error's texts are made storable first (storableText), so a NUL in a message cannot make
 * the statement fail and lose the error. Returns null when the lease was lost.
 */
export async function failJob(db: Queryable, f: Failure): Promise<FailOutcome | null> {
  const error = {
    message: storableText(f.error.message),
    name: storableText(f.error.name),
    stack: f.error.stack === undefined ? undefined : storableText(f.error.stack),
    attempt: f.error.attempt,
    worker: storableText(f.error.worker),
  };
  const { rows } = await retryOnSerializationFailure(() =>
    db.query<{ status: JobStatus; run_at: Date; attempts: number }>(
      'SELECT status, run_at, attempts FROM jobs_fail($1, $2, $3, $4, $5, $6)',
      [f.id, f.leaseToken, f.permanent, f.backoffBaseSeconds, f.maxBackoffSeconds, JSON.stringify(error)],
    ),
  );
  const row = rows[0];
  return row ? { status: row.status, runAt: row.run_at, attempts: row.attempts } : null;
}
