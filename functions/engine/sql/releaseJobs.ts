import type { Queryable } from '../queryable.ts';
import type { JobStatus, Lease } from '../types.ts';
import { leasesParam } from './fence.ts';
import { retryOnSerializationFailure } from './serializationRetry.ts';

/** A lease handed back; `deadline`: stopped by the invocation deadline (counted, capped). */
export interface Release extends Lease {
  deadline?: boolean;
}

/** How many deadline releases a job gets before the next deadline stop fails it. */
export const DEFAULT_MAX_DEADLINE_RELEASES = 3;

/**
 * Returns jobs to `queued` without consuming an attempt: the claim's +1 is taken back. Used at
 * the invocation deadline for jobs not started or aborted in time, when a consumer stops, and
 * for jobs whose queue was paused while they waited. `jobs_release` of migration 0008, fenced.
 *
 * A release marked `deadline` (the job was started and aborted at the deadline, or not started
 * because its timeoutSeconds is longer than a whole invocation) is counted in the job's
 * `deadline_releases`; a job already released `maxDeadlineReleases` times that way ends `failed`
 * ("exceeds the invocation time") instead, so a job longer than any invocation cannot be claimed
 * without bound. Returns each changed job's new status (`queued`, or `failed`) by id.
 */
export async function releaseJobs(
  db: Queryable,
  leases: readonly Release[],
  reason: string,
  maxDeadlineReleases = DEFAULT_MAX_DEADLINE_RELEASES,
): Promise<Map<string, JobStatus>> {
  if (leases.length === 0) return new Map();
  const { rows } = await retryOnSerializationFailure(() =>
    db.query<{ id: string; status: JobStatus }>('SELECT id, status FROM jobs_release($1, $2, $3)', [
      leasesParam(leases),
      reason,
      maxDeadlineReleases,
    ]),
  );
  return new Map(rows.map((r) => [String(r.id), r.status]));
}
