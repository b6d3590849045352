import { DatabaseUnavailableError } from '../errors.ts';

/** SQLSTATE serialization_failure. */
const SERIALIZATION_FAILURE = '40001';

/**
 * How many times an engine statement is sent when it fails with SQLSTATE 40001: the claim (below),
 * and the lease holder's renew, fail and release and the api's cancel, which fail the same way
 * when they wait on a running row that a hand-written UPDATE (the runbook's cancel) moves and
 * commits; sent again, they match nothing, as before 0022
 * (test/integration/moved-running.test.ts). Since 0022 a hand-written
 * UPDATE that moves a queued row to a finished partition (the runbook's cancel of queued jobs)
 * makes a concurrent `FOR UPDATE SKIP LOCKED` that meets the row fail with 40001 ("tuple to be
 * locked was already moved to another partition due to concurrent update"). The moved row is
 * gone from jobs_live by the time the claim is sent again, so a second attempt succeeds unless
 * another such UPDATE lands in between; three covers a runbook's batch moving rows one UPDATE
 * after another, and beyond that the error surfaces as before.
 */
export const CLAIM_ATTEMPTS = 3;

/** The SQLSTATE of a failure, raw from pg (`code`) or wrapped by functions/platform/db.ts (`sqlState`). */
function failureSqlState(err: unknown): string | undefined {
  if (err instanceof DatabaseUnavailableError) return (err as { sqlState?: string }).sqlState;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isSerializationFailure(err: unknown): boolean {
  return failureSqlState(err) === SERIALIZATION_FAILURE;
}

/**
 * Runs `statement` again when it fails with 40001, up to `attempts` times in all. Only for a
 * single statement outside a transaction: a 40001 rolls back the whole statement (the claim and
 * the completions riding it), so sending the identical statement again is safe.
 */
export async function retryOnSerializationFailure<T>(
  statement: () => Promise<T>,
  attempts = CLAIM_ATTEMPTS,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await statement();
    } catch (err) {
      if (attempt >= attempts || !isSerializationFailure(err)) throw err;
    }
  }
}
