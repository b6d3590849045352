/**
 * Operator actions, one implementation for the HTTP API, taskctl and the dashboard: cancel,
 * requeue, release-stuck, retry-failed, pause/resume of queues, schedules (add, remove, pause,
 * resume), queue limits and retention. Each writes its job_audit row in the same transaction (or statement) as the change, so both
 * commit or neither; each checks here what may be done (missing, terminal, changed since it was
 * read). How a caller asks for confirmation (taskctl's --yes, --dry-run) stays with the caller.
 */

import type { TaskRegistry } from '../tasks/define.ts';
import { ANYONE, type Viewer } from './access.ts';
import { type EnqueueResult, enqueue } from './enqueue.ts';
import { ConflictError, NotFoundError } from './errors.ts';
import type { Db, Queryable } from './queryable.ts';
import {
  deleteSchedule,
  getSchedule,
  putSchedule,
  type Schedule,
  type ScheduleDefinition,
  setScheduleEnabled,
} from './schedules.ts';
import type { EnqueueRequest, QueueLimitChange } from './schema.ts';
import { type AuditBy, type AuditEntry, insertAudit } from './sql/audit.ts';
import { cancelJob } from './sql/cancelJob.ts';
import { getJob } from './sql/getJob.ts';
import { countJobsByQueue } from './sql/jobStats.ts';
import { type QueueLimits, setQueueLimits } from './sql/queueLimits.ts';
import { type QueueRetention, type QueueRetentionSetting, setQueueRetention } from './sql/queueRetention.ts';
import { listQueueControls, pauseQueue, resumeQueue } from './sql/queues.ts';
import { type Requeued, type RequeueTarget, requeueJobs } from './sql/requeueJobs.ts';
import type { JobRow } from './types.ts';

/** Who acts and why: kept in last_error and the audit row. */
export interface Act {
  actor: string;
  reason: string;
}

/** A queue or schedule change: the reason is optional there. */
export type ControlAct = AuditBy;

async function jobOr404(db: Queryable, id: string, viewer: Viewer = ANYONE): Promise<JobRow> {
  const row = await getJob(db, id, viewer);
  if (!row) throw new NotFoundError(`job ${id} not found`, { details: { id } });
  return row;
}

/**
 * Cancels one job (the API's and the dashboard's cancel). With `leaseToken`, only while the job
 * still holds the lease the operator saw. 404 when missing or hidden from `viewer`, 409 when
 * already finished. The audit row is written by the same statement (jobs_cancel_audited).
 */
export async function cancelOne(
  db: Queryable,
  id: string,
  act: Act & { viewer?: Viewer; leaseToken?: string | undefined },
): Promise<JobRow> {
  const viewer = act.viewer ?? ANYONE;
  if (act.leaseToken !== undefined) {
    const before = await jobOr404(db, id, viewer);
    if (act.leaseToken !== String(before.lease_token)) {
      throw new ConflictError(
        'changed_meanwhile',
        `job ${id} was claimed again since it was shown; nothing changed`,
      );
    }
  }
  const row = await cancelJob(db, id, act.reason, act.actor, viewer);
  if (row) return row;
  const now = await jobOr404(db, id, viewer);
  throw new ConflictError('job_terminal', `job ${id} is already ${now.status}; nothing to cancel`, {
    details: { id, status: now.status },
  });
}

export interface CancelTarget {
  id: string;
  status: string;
  worker: string | null;
}

/** What a cancel of `ids` would change; refuses (changing nothing) when any is missing or finished. */
export async function planCancel(db: Queryable, ids: readonly string[]): Promise<CancelTarget[]> {
  const seen = await Promise.all(ids.map(async (id) => ({ id, row: await getJob(db, id) })));
  const missing = seen.filter((s) => !s.row).map((s) => s.id);
  if (missing.length > 0) throw new NotFoundError(`job(s) not found: ${missing.join(', ')}; nothing changed`);
  const terminal = seen.filter((s) => s.row!.status === 'completed' || s.row!.status === 'failed');
  if (terminal.length > 0) {
    throw new ConflictError(
      'terminal',
      `job(s) already finished: ${terminal.map((s) => `${s.id} (${s.row!.status})`).join(', ')}; nothing changed`,
    );
  }
  return seen.map((s) => ({ id: s.id, status: s.row!.status, worker: s.row!.locked_by }));
}

export interface Cancelled {
  id: string;
  previousStatus: string;
  worker: string | null;
}

/** Cancels every job of `ids` or none: one that finished since it was read rolls all back. */
export async function cancelMany(db: Db, ids: readonly string[], act: Act): Promise<Cancelled[]> {
  return db.transaction(async (tx) => {
    const out: Cancelled[] = [];
    for (const id of ids) {
      const row = await cancelJob(tx, id, act.reason, act.actor);
      if (!row) throw new ConflictError('terminal', `job ${id} finished meanwhile; nothing changed`);
      const previous = (row.last_error as { previousStatus?: string }).previousStatus ?? 'unknown';
      out.push({ id, previousStatus: previous, worker: row.locked_by });
    }
    return out;
  });
}

export interface Refusal {
  id: string;
  reason: string;
}

/** Which of `ids` may be requeued (running or failed, fenced on the lease token read now) and why the others may not. */
export async function planRequeue(
  db: Queryable,
  ids: readonly string[],
): Promise<{ targets: RequeueTarget[]; refused: Refusal[] }> {
  const targets: RequeueTarget[] = [];
  const refused: Refusal[] = [];
  for (const id of ids) {
    const row = await getJob(db, id);
    if (!row) refused.push({ id, reason: 'not found' });
    else if (row.status === 'running' || row.status === 'failed')
      targets.push({ id, status: row.status, leaseToken: String(row.lease_token) });
    else
      refused.push({
        id,
        reason:
          row.status === 'queued'
            ? 'already queued'
            : 'completed: requeueing would run it twice (enqueue a new job instead)',
      });
  }
  return { targets, refused };
}

/** Force-release of running (or re-run of failed) jobs, keeping the attempt count. */
export function requeue(db: Queryable, targets: readonly RequeueTarget[], act: Act): Promise<Requeued[]> {
  return requeueJobs(db, targets, { action: 'requeue', ...act, resetAttempts: false });
}

/** Force-release of running jobs whose worker looks gone (findStuckJobs), keeping the attempt count. */
export function releaseStuck(
  db: Queryable,
  targets: readonly RequeueTarget[],
  act: Act,
): Promise<Requeued[]> {
  return requeueJobs(db, targets, { action: 'release-stuck', ...act, resetAttempts: false });
}

/** Dead-letter redrive of failed jobs (findFailedJobs) with a fresh retry budget. */
export function retryFailed(db: Queryable, targets: readonly RequeueTarget[], act: Act): Promise<Requeued[]> {
  return requeueJobs(db, targets, { action: 'retry-failed', ...act, resetAttempts: true });
}

/**
 * Requeues (want 'running') or retries (want 'failed') one job the operator looked at, fenced on
 * `leaseToken` (default: the one read now). 404 missing, 409 wrong status or changed since.
 */
export async function requeueOne(
  db: Queryable,
  id: string,
  want: 'failed' | 'running',
  act: Act & { leaseToken?: string | undefined },
): Promise<void> {
  const retry = want === 'failed';
  const row = await jobOr404(db, id);
  if (row.status !== want) {
    const hint = retry
      ? 'only a failed job can be retried'
      : row.status === 'failed'
        ? 'a failed job is retried, not requeued'
        : 'only a running job can be requeued';
    throw new ConflictError('wrong_status', `job ${id} is ${row.status}: ${hint}; nothing changed`, {
      details: { id, status: row.status },
    });
  }
  const target = { id, status: want, leaseToken: act.leaseToken ?? String(row.lease_token) };
  const changed = await (retry ? retryFailed : requeue)(db, [target], act);
  if (changed.length === 0) {
    throw new ConflictError(
      'changed_meanwhile',
      `job ${id} changed since it was shown (completed, reclaimed or locked by a worker); nothing changed`,
      { details: { id } },
    );
  }
}

/** Every queue known now: from jobs or from the control table, by name. */
export async function knownQueues(db: Queryable): Promise<string[]> {
  const [counts, controls] = [await countJobsByQueue(db), await listQueueControls(db)];
  return [...new Set([...counts.map((q) => q.queue), ...controls.map((q) => q.name)])].sort();
}

export async function pausedQueues(db: Queryable): Promise<string[]> {
  return (await listQueueControls(db)).filter((q) => q.paused).map((q) => q.name);
}

/** Pauses (consumers stop claiming at their next claim) or resumes queues, one audit row each. */
export function setQueuesPaused(
  db: Db,
  queues: readonly string[],
  paused: boolean,
  act: ControlAct,
): Promise<void> {
  const action = paused ? 'pause' : 'resume';
  return audited(
    db,
    async (tx) => {
      for (const q of queues) {
        if (paused) await pauseQueue(tx, q, act.actor, act.reason);
        else await resumeQueue(tx, q, act.actor);
      }
    },
    () => queues.map((queue) => ({ jobId: null, queue, action, ...act })),
  );
}

/** Makes `change` and the audit rows describing its result in one transaction: both commit or neither. */
async function audited<T>(
  db: Db,
  change: (tx: Queryable) => Promise<T>,
  entries: (result: T) => AuditEntry[],
): Promise<T> {
  return db.transaction(async (tx) => {
    const result = await change(tx);
    await insertAudit(tx, entries(result));
    return result;
  });
}

/**
 * Adds or replaces a run-time schedule (validated first), with its audit row ('schedule-add' or
 * 'schedule-replace') written by the same statement (schedule_put_audited). `created`: it was new.
 */
export async function addSchedule(
  db: Queryable,
  def: ScheduleDefinition,
  act: ControlAct,
  registry?: TaskRegistry,
): Promise<{ schedule: Schedule; created: boolean }> {
  const existed = typeof def.name === 'string' && (await getSchedule(db, def.name)) !== null;
  const schedule = await putSchedule(db, def, registry, act);
  return { schedule, created: !existed };
}

/** Removes a run-time schedule (404 missing, 409 defined in code), its 'schedule-remove' audit row in the same statement. */
export function removeSchedule(db: Queryable, name: string, act: ControlAct): Promise<void> {
  return deleteSchedule(db, name, act);
}

/** Pauses or resumes a schedule, its audit row (naming the schedule's queue) in the same statement. */
export function setScheduleState(
  db: Queryable,
  name: string,
  enabled: boolean,
  act: ControlAct,
): Promise<Schedule> {
  return setScheduleEnabled(db, name, enabled, act);
}

/** Sets or removes a queue's limits (validated first), its 'set-limit' audit row (the change) in the same statement. */
export function setLimits(
  db: Queryable,
  queue: string,
  change: QueueLimitChange,
  act: ControlAct,
): Promise<QueueLimits> {
  return setQueueLimits(db, queue, change, act);
}

/**
 * Sets a queue's retention, `keep` or `delete` (validated first), its 'set-retention' audit row
 * ({retention, previous}) in the same statement.
 */
export function setRetention(
  db: Queryable,
  queue: string,
  retention: QueueRetention,
  act: ControlAct,
): Promise<QueueRetentionSetting> {
  return setQueueRetention(db, queue, retention, act);
}

/** A job enqueued by hand (taskctl enqueue): an audit row when it was created, none for a replay. */
export function enqueueByOperator(db: Db, request: EnqueueRequest, act: Act): Promise<EnqueueResult> {
  return audited(
    db,
    (tx) => enqueue(tx, request),
    (r) => (r.created ? [{ jobId: r.job.id, queue: r.job.queue, action: 'enqueue', ...act }] : []),
  );
}
