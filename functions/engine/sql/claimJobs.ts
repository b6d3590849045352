import type { Queryable } from '../queryable.ts';
import type { ClaimedJob } from '../types.ts';

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
 * The claim: `jobs_claim(worker, limit, lease_seconds, queues, advisory, completions)` of
 * migration 0006 (rewritten in 0008), a PL/pgSQL function so that its plans are cached in the
 * backend instead of parsed and planned on every call, and SECURITY DEFINER: the consumer role
 * cannot update jobs itself. It completes `$6` first (a fenced batch completion, see
 * completeJobs) and then claims priority level by priority level, FOR UPDATE SKIP LOCKED or, on
 * the advisory path, transaction-scoped try-locks over a bounded candidate set; rows scheduled
 * for later and paused queues' rows are never read. The claimed jobs come back as one jsonb
 * array already shaped as ClaimedJob, in claim order (priority DESC, run_at, id); the completed
 * ids as one comma-separated text.
 */
export const CLAIM_SQL = 'SELECT o_claimed, o_completed FROM jobs_claim($1, $2, $3, $4, $5, $6)';

export interface ClaimAnswer {
  o_claimed: ClaimedJob[];
  o_completed: string | null;
}

/** The parameters of CLAIM_SQL; `completions` is a jsonb array text (completionsParam). */
export function claimParams(o: ClaimOptions, completions: string): unknown[] {
  return [
    o.workerId,
    o.limit,
    o.leaseSeconds,
    o.queues.length > 0 ? o.queues : null,
    o.advisoryLocks ?? false,
    completions,
  ];
}

/** Claims up to `limit` jobs in one statement (see CLAIM_SQL). */
export async function claimJobs(db: Queryable, o: ClaimOptions): Promise<ClaimedJob[]> {
  const { rows } = await db.query<ClaimAnswer>(CLAIM_SQL, claimParams(o, '[]'));
  return rows[0]!.o_claimed;
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
