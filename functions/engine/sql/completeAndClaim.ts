import type { Queryable } from '../queryable.ts';
import type { ClaimedJob } from '../types.ts';
import { CLAIM_SQL, type ClaimAnswer, type ClaimOptions, claimedJobs, claimParams } from './claimJobs.ts';
import { type Completion, completionArrays } from './completeJobs.ts';
import { retryOnSerializationFailure } from './serializationRetry.ts';

/**
 * Completes the previous batch and claims the next in one call of `jobs_claim`: one round trip
 * per batch instead of two. Both parts keep their own semantics: the completion is fenced per
 * job and runs first, the claim skips locked rows (it cannot take a row being completed: those
 * are `running`). Reading the claimed jobs out of the answer's arrays is the only per-job work on
 * the client. A 40001 (a queued row moved by hand-written SQL, serializationRetry.ts) rolls back
 * the whole statement, completions included, so the identical statement is sent again.
 */
export async function completeAndClaim(
  db: Queryable,
  completions: readonly Completion[],
  claim: ClaimOptions,
): Promise<{ completed: Set<string>; claimed: ClaimedJob[] }> {
  const params = claimParams(claim, completionArrays(completions));
  const { rows } = await retryOnSerializationFailure(() => db.query<ClaimAnswer>(CLAIM_SQL, params));
  const row = rows[0]!;
  return { completed: new Set(row.o_completed ?? []), claimed: claimedJobs(row) };
}
