import { ANYONE, type Viewer } from '../access.ts';
import type { Queryable } from '../queryable.ts';
import { JOB_COLUMNS, type JobRow } from '../types.ts';
import { retryOnSerializationFailure } from './serializationRetry.ts';

/**
 * Safe cancel, as the runbook asks: the job ends `failed` with the reason, who and when kept
 * in last_error; the row stays for audit. Only queued or running jobs; a running job's worker
 * is fenced out (status is no longer 'running'). With a creator-only `viewer`, only a job the
 * viewer created. Returns null when the job is missing, terminal or hidden from the viewer.
 * Runs jobs_cancel_audited (migration 0012): the cancel and its job_audit row are one
 * statement, as the owner (the api role may neither update jobs nor insert audit rows itself).
 */
export async function cancelJob(
  db: Queryable,
  id: string,
  reason: string,
  actor: string,
  viewer: Viewer = ANYONE,
): Promise<JobRow | null> {
  const { rows } = await retryOnSerializationFailure(() =>
    db.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs_cancel_audited($1, $2, $3, $4, $5)`, [
      id,
      reason,
      actor,
      viewer.creatorOnly,
      viewer.caller,
    ]),
  );
  return rows[0] ?? null;
}
