import type { Queryable } from '../queryable.ts';
import { JOB_COLUMNS, type JobRow } from '../types.ts';

/**
 * Safe cancel, as the runbook asks: the job ends `failed` with the reason, who and when kept
 * in last_error; the row stays for audit. Only queued or running jobs; a running job's worker
 * is fenced out (status is no longer 'running'). Returns null when the job is missing or terminal.
 */
export async function cancelJob(
  db: Queryable,
  id: string,
  reason: string,
  actor: string,
): Promise<JobRow | null> {
  const { rows } = await db.query<JobRow>(
    `UPDATE jobs SET status = 'failed', finished_at = now(), updated_at = now(), locked_at = NULL,
            last_error = jsonb_build_object('name', 'Cancelled', 'message', $2::text, 'actor', $3::text,
                                            'at', now(), 'previousStatus', status, 'attempt', attempts)
     WHERE id = $1 AND status IN ('queued', 'running')
     RETURNING ${JOB_COLUMNS}`,
    [id, reason, actor],
  );
  return rows[0] ?? null;
}
