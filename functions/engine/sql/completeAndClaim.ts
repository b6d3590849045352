import type { Queryable } from '../queryable.ts';
import type { ClaimedJob } from '../types.ts';
import { CLAIM_ORDER, type ClaimOptions, claimCtes } from './claimJobs.ts';
import { type Completion, completeSql, completionsParam } from './completeJobs.ts';

/**
 * Completes the previous batch and claims the next in one statement: one round trip per batch
 * instead of two. Both parts keep their own semantics: the completion is fenced per job, the
 * claim skips locked rows (it cannot take a row being completed: those are `running`). The
 * counters' statement trigger fires once and sees both parts' rows.
 */
export async function completeAndClaim(
  db: Queryable,
  completions: readonly Completion[],
  claim: ClaimOptions,
): Promise<{ completed: Set<string>; claimed: ClaimedJob[] }> {
  const { ctes, params } = claimCtes(claim);
  params.push(completionsParam(completions));
  // The claimed rows come back as one jsonb array already shaped as ClaimedJob: parsing it is
  // the only per-job work on the client, in claim order (UPDATE … RETURNING gives primary-key
  // order). Completed ids come back as one comma-separated text.
  const { rows } = await db.query<{ claimed: ClaimedJob[]; completed: string | null }>(
    `WITH ${ctes}, completed AS (${completeSql(params.length)})
     SELECT (SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', c.id::text, 'queue', c.queue, 'type', c.task_type, 'payload', c.payload,
               'attempt', c.attempts, 'maxAttempts', c.max_attempts,
               'leaseToken', c.lease_token::text, 'leaseSeconds', c.lease_seconds)
               ORDER BY ${CLAIM_ORDER}), '[]'::jsonb)
             FROM claimed c) AS claimed,
            (SELECT string_agg(id::text, ',') FROM completed) AS completed`,
    params,
  );
  const row = rows[0]!;
  return { completed: new Set(row.completed ? row.completed.split(',') : []), claimed: row.claimed };
}
