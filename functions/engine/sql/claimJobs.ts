import type { Queryable } from '../queryable.ts';
import type { ClaimedJob } from '../types.ts';
import type { CompletionArrays } from './completeJobs.ts';
import { retryOnSerializationFailure } from './serializationRetry.ts';

export interface ClaimOptions {
  workerId: string;
  limit: number;
  leaseSeconds: number;
  /** Empty: every queue. */
  queues: readonly string[];
  advisoryLocks?: boolean;
}

/**
 * The advisory lock namespace (first key of the two-key form) of the advisory claim path, so our
 * keys never meet an app's own. Written into migration 0006's jobs_claim as 2052980737.
 */
export const ADVISORY_NAMESPACE = 0x7a5e_0001;

/**
 * The claim: `jobs_claim_batch(worker, limit, lease_seconds, queues, advisory, done_ids,
 * done_tokens, done_results)` (migrations/functions/claim.sql), a PL/pgSQL function so that its
 * plans are cached in the backend instead of parsed and planned on every call, and SECURITY
 * DEFINER: the consumer role cannot update jobs itself. It completes `$6`..`$8` first (a fenced
 * batch completion, see completeJobs) and then claims priority level by priority level, FOR
 * UPDATE SKIP LOCKED or, on the advisory path, transaction-scoped try-locks over a bounded
 * candidate set; rows scheduled for later and paused queues' rows are never read. The claimed
 * jobs come back as one row of parallel arrays in claim order (priority DESC, run_at, id), the
 * payloads as one json array; no jsonb object is built per job (issue 21: that was 21% of the
 * server's time at a claim of 500). The previous release's `jobs_claim(…, completions jsonb)`
 * still answers with its jsonb array.
 */
export const CLAIM_SQL =
  'SELECT o_ids, o_queues, o_types, o_payloads, o_attempts, o_max_attempts, o_tokens, o_lease_seconds, o_completed FROM jobs_claim_batch($1, $2, $3, $4, $5, $6, $7, $8)';

/** CLAIM_SQL's one row: parallel arrays (NULL when nothing was claimed), bigints as strings. */
export interface ClaimAnswer {
  o_ids: string[] | null;
  o_queues: string[] | null;
  o_types: string[] | null;
  o_payloads: unknown[] | null;
  o_attempts: number[] | null;
  o_max_attempts: number[] | null;
  o_tokens: string[] | null;
  o_lease_seconds: number;
  o_completed: string[] | null;
}

/** The parameters of CLAIM_SQL; `completions` are the arrays completionArrays builds. */
export function claimParams(o: ClaimOptions, completions: CompletionArrays = NO_COMPLETIONS): unknown[] {
  return [
    o.workerId,
    o.limit,
    o.leaseSeconds,
    o.queues.length > 0 ? o.queues : null,
    o.advisoryLocks ?? false,
    completions.ids,
    completions.tokens,
    completions.results,
  ];
}
const NO_COMPLETIONS: CompletionArrays = { ids: [], tokens: [], results: [] };

/** The claimed jobs of CLAIM_SQL's row, in claim order. */
export function claimedJobs(row: ClaimAnswer): ClaimedJob[] {
  const ids = row.o_ids;
  if (!ids) return [];
  const jobs = new Array<ClaimedJob>(ids.length);
  for (let i = 0; i < ids.length; i++) {
    jobs[i] = {
      id: ids[i]!,
      queue: row.o_queues![i]!,
      type: row.o_types![i]!,
      payload: row.o_payloads![i],
      attempt: row.o_attempts![i]!,
      maxAttempts: row.o_max_attempts![i]!,
      leaseToken: row.o_tokens![i]!,
      leaseSeconds: row.o_lease_seconds,
    };
  }
  return jobs;
}

/** Claims up to `limit` jobs in one statement (see CLAIM_SQL); sent again after a 40001 (serializationRetry.ts). */
export async function claimJobs(db: Queryable, o: ClaimOptions): Promise<ClaimedJob[]> {
  const params = claimParams(o);
  const { rows } = await retryOnSerializationFailure(() => db.query<ClaimAnswer>(CLAIM_SQL, params));
  return claimedJobs(rows[0]!);
}

/** Which of `names` are paused now (the consumer's check before starting jobs it claimed a while ago). */
export async function pausedQueues(db: Queryable, names: readonly string[]): Promise<Set<string>> {
  if (names.length === 0) return new Set();
  const { rows } = await db.query<{ name: string }>(
    'SELECT name FROM queues WHERE paused AND name = ANY ($1::text[])',
    [names],
  );
  return new Set(rows.map((r) => r.name));
}
