import type { Queryable } from '../queryable.ts';

/**
 * Who makes a queue or schedule change, and why (optional there): given to a statement, it is
 * the `_audited` one, which writes the job_audit row as it makes the change.
 */
export interface AuditBy {
  actor: string;
  reason: string | null;
}

export interface AuditEntry {
  jobId: string | null;
  queue: string | null;
  action: string;
  actor: string;
  reason: string | null;
  details?: unknown;
}

export interface AuditRecord extends Required<AuditEntry> {
  id: string;
  at: Date;
}

/** Records manual changes; call it in the transaction that makes them, so both commit or neither. */
export async function insertAudit(db: Queryable, entries: readonly AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await db.query(
    `INSERT INTO job_audit (job_id, queue, action, actor, reason, details)
     SELECT x.job_id, x.queue, x.action, x.actor, x.reason, coalesce(x.details, '{}'::jsonb)
     FROM jsonb_to_recordset($1::jsonb) AS x(job_id bigint, queue text, action text, actor text, reason text, details jsonb)`,
    [
      JSON.stringify(
        entries.map((e) => ({
          job_id: e.jobId,
          queue: e.queue,
          action: e.action,
          actor: e.actor,
          reason: e.reason,
          details: e.details ?? {},
        })),
      ),
    ],
  );
}

/** One job's manual history, oldest first. */
export async function listAudit(db: Queryable, jobId: string): Promise<AuditRecord[]> {
  const { rows } = await db.query<{
    id: string;
    job_id: string | null;
    queue: string | null;
    action: string;
    actor: string;
    reason: string | null;
    at: Date;
    details: unknown;
  }>(
    `SELECT id, job_id, queue, action, actor, reason, at, details
     FROM job_audit WHERE job_id = $1 ORDER BY at, id`,
    [jobId],
  );
  return rows.map((r) => ({
    id: String(r.id),
    jobId: r.job_id === null ? null : String(r.job_id),
    queue: r.queue,
    action: r.action,
    actor: r.actor,
    reason: r.reason,
    at: r.at,
    details: r.details,
  }));
}
