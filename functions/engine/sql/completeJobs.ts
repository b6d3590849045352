import { NonRetryableError } from '../errors.ts';
import type { Queryable } from '../queryable.ts';
import type { Lease } from '../types.ts';

export interface Completion extends Lease {
  result?: unknown;
  /** The result already serialised (storableResult): sent as is, not serialised again. */
  resultJson?: string;
}

/**
 * The JSON escapes jsonb refuses: `\u0000`, and a surrogate escape, which JSON.stringify writes
 * only for a lone surrogate (a paired one stays two raw characters). Preceded by an even run of
 * backslashes, so an escaped backslash followed by the letters `u0000` does not match.
 */
const UNSTORABLE_ESCAPE = /(?<!\\)(?:\\\\)*\\u(0000|d[89a-f][0-9a-f]{2})/i;

/**
 * A task's result as the JSON text the completion sends, or a NonRetryableError ("result not
 * storable: …") when jsonb could not store it: a BigInt, a cycle or a throwing toJSON (the
 * serialiser throws), NUL in a string or key, a lone surrogate. Called once per job when the
 * task finishes, so the bad job fails alone and the batch completion never meets the value.
 * The text is scanned for escapes only when it has a `\u` at all (rare: JSON.stringify writes
 * one only for control characters and lone surrogates).
 */
export function storableResult(value: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value ?? null);
  } catch (err) {
    throw new NonRetryableError(`result not storable: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (json === undefined) return 'null'; // a function or a symbol
  if (json.includes('\\u')) {
    const bad = UNSTORABLE_ESCAPE.exec(json);
    if (bad)
      throw new NonRetryableError(
        bad[1] === '0000'
          ? 'result not storable: it contains NUL (\\u0000), which jsonb cannot store'
          : `result not storable: it contains a lone surrogate (\\u${bad[1]!.toLowerCase()}), which jsonb cannot store`,
      );
  }
  return json;
}

/** A batch of completions as the parallel arrays jobs_complete_batch and the claim take. */
export interface CompletionArrays {
  /** bigint decimal strings. */
  ids: string[];
  tokens: string[];
  /** Each job's result as JSON text (storableResult), sent in a jsonb[]. */
  results: string[];
}

/**
 * The parallel arrays of a batch: ids and tokens are checked to be bigint decimal strings
 * (digits only) here, at the edge, so a bad lease is a TypeError and not a refused batch; a
 * result already serialised by storableResult goes in as that text.
 */
export function completionArrays(completions: readonly Completion[]): CompletionArrays {
  const n = completions.length;
  const out: CompletionArrays = { ids: new Array(n), tokens: new Array(n), results: new Array(n) };
  for (let i = 0; i < n; i++) {
    const c = completions[i]!;
    if (!DIGITS.test(c.id) || !DIGITS.test(c.leaseToken))
      throw new TypeError(`bad lease ${c.id}/${c.leaseToken}`);
    out.ids[i] = c.id;
    out.tokens[i] = c.leaseToken;
    out.results[i] = c.resultJson ?? JSON.stringify(c.result ?? null) ?? 'null';
  }
  return out;
}
const DIGITS = /^\d{1,19}$/;

/**
 * Completes a batch in one statement, fenced per job by (status = 'running', lease_token):
 * `jobs_complete_batch` (migrations/functions/consumer.sql; a PL/pgSQL function, so its plan is
 * cached; SECURITY DEFINER), one primary-key probe per id. Returns the ids that completed; any
 * other id lost its lease and changed nothing.
 */
export async function completeJobs(db: Queryable, completions: readonly Completion[]): Promise<Set<string>> {
  if (completions.length === 0) return new Set();
  const c = completionArrays(completions);
  const { rows } = await db.query<{ ids: string[] | null }>('SELECT jobs_complete_batch($1, $2, $3) AS ids', [
    c.ids,
    c.tokens,
    c.results,
  ]);
  return new Set(rows[0]!.ids ?? []);
}

/**
 * True for an error the database raised about a value (SQLSTATE class 22, data exception, or
 * 54, program limit exceeded, e.g. a document too large): the statement failed because of what
 * it was sent, and sending the same rows one by one finds the one at fault.
 */
export function isValueError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('54'));
}
