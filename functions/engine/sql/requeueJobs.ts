import type { Queryable } from '../queryable.ts';

/** A job as the operator saw it: the requeue applies only if it is still in this state. */
export interface RequeueTarget {
  id: string;
  status: 'running' | 'failed';
  leaseToken: string;
}

export interface RequeueOptions {
  /** Audit action name: requeue, release-stuck, retry-failed. */
  action: string;
  actor: string;
  reason: string;
  /** Dead-letter redrive: a fresh retry budget. A force-release keeps the attempt the worker used. */
  resetAttempts: boolean;
}

export interface Requeued {
  id: string;
  previousStatus: 'running' | 'failed';
  previousWorker: string | null;
}

/**
 * Force-release (the runbook's `UPDATE jobs SET status='queued' …`), fenced: a target changes
 * only while its status and lease_token are what the operator read. Rows are locked with SKIP
 * LOCKED first, so against a worker completing the same job exactly one wins: a completion
 * that commits first moves the status and the requeue matches nothing; a completion still in
 * flight holds the row, the requeue skips it; a requeue that locks first makes the worker's
 * fenced complete match nothing. Skipping (not waiting) also means no deadlock with a batched
 * complete that locks rows in another order.
 *
 * In the same statement: last_error records who, when and why; job_audit keeps the previous
 * state; releasing a running job adds to `recovered`, as the reaper does for an expired lease.
 * Returns the jobs changed; any other target was changed by someone else and was left alone.
 */
export async function requeueJobs(
  db: Queryable,
  targets: readonly RequeueTarget[],
  o: RequeueOptions,
): Promise<Requeued[]> {
  if (targets.length === 0) return [];
  const { rows } = await db.query<{
    id: string;
    previous_status: 'running' | 'failed';
    previous_worker: string | null;
  }>(
    `WITH targets AS (
       SELECT x.id, x.status, x.token
       FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, status text, token bigint)
     ), locked AS (
       SELECT j.id, j.status, j.lease_token, j.locked_by, j.attempts, j.last_error
       FROM jobs j JOIN targets t ON t.id = j.id
       WHERE j.status IN ('running', 'failed') AND j.status = t.status AND j.lease_token = t.token
       ORDER BY j.id
       FOR UPDATE OF j SKIP LOCKED
     ), changed AS (
       UPDATE jobs j SET
         status = 'queued',
         run_at = now(),
         attempts = CASE WHEN $5::boolean THEN 0 ELSE j.attempts END,
         locked_at = NULL,
         locked_by = NULL,
         finished_at = NULL,
         updated_at = now(),
         last_error = jsonb_build_object(
           'name', 'Requeued', 'action', $2::text, 'message', $4::text, 'actor', $3::text, 'at', now(),
           'previousStatus', l.status, 'worker', l.locked_by, 'attempt', l.attempts)
       FROM locked l
       WHERE j.id = l.id AND j.status = l.status AND j.lease_token = l.lease_token
       RETURNING j.id, j.queue, l.status AS previous_status, l.locked_by AS previous_worker,
                 l.lease_token, l.attempts AS previous_attempts, l.last_error AS previous_error
     ), audited AS (
       INSERT INTO job_audit (job_id, queue, action, actor, reason, details)
       SELECT id, queue, $2::text, $3::text, $4::text,
              jsonb_build_object('previousStatus', previous_status, 'worker', previous_worker,
                                 'leaseToken', lease_token::text, 'attempts', previous_attempts,
                                 'previousError', previous_error, 'resetAttempts', $5::boolean)
       FROM changed
     ), counted AS (
       INSERT INTO job_counter_deltas (recovered)
       SELECT count(*) FROM changed WHERE previous_status = 'running' HAVING count(*) > 0
     )
     SELECT id, previous_status, previous_worker FROM changed ORDER BY id`,
    [
      JSON.stringify(targets.map((t) => ({ id: t.id, status: t.status, token: t.leaseToken }))),
      o.action,
      o.actor,
      o.reason,
      o.resetAttempts,
    ],
  );
  return rows.map((r) => ({
    id: String(r.id),
    previousStatus: r.previous_status,
    previousWorker: r.previous_worker,
  }));
}
