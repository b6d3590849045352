import type { Queryable } from '../queryable.ts';
import type { ClaimedJob } from '../types.ts';
import { type ClaimOptions, type ClaimRow, claimCtes, toClaimedJob } from './claimJobs.ts';
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
  const { rows } = await db.query<{ claimed: ClaimRow[]; completed: string[] | null }>(
    `WITH ${ctes}, completed AS (${completeSql(params.length)})
     SELECT (SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', c.id::text, 'queue', c.queue, 'task_type', c.task_type, 'payload', c.payload,
               'attempts', c.attempts, 'max_attempts', c.max_attempts,
               'lease_token', c.lease_token::text, 'lease_seconds', c.lease_seconds)), '[]'::jsonb)
             FROM claimed c) AS claimed,
            (SELECT array_agg(id) FROM completed) AS completed`,
    params,
  );
  const row = rows[0]!;
  return { completed: new Set((row.completed ?? []).map(String)), claimed: row.claimed.map(toClaimedJob) };
}
