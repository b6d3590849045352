export type JobStatus = 'queued' | 'running' | 'completed' | 'failed';
export const JOB_STATUSES: readonly JobStatus[] = ['queued', 'running', 'completed', 'failed'];

/** A job as the engine returns it. `id` and `leaseToken` are bigint, carried as strings. */
export interface Job {
  id: string;
  queue: string;
  type: string;
  payload: unknown;
  status: JobStatus;
  priority: number;
  runAt: Date;
  /** null: not known, for a replay of a job its queue deleted on completion (retention `delete`). */
  attempts: number | null;
  maxAttempts: number;
  leaseToken: string;
  lockedAt: Date | null;
  lockedBy: string | null;
  /** null: not known, as `attempts`. */
  leaseSeconds: number | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  lastError: unknown;
  result: unknown;
  idempotencyKey: string | null;
}

/** What a claim hands a worker: enough to run the job and fence every later transition. */
export interface ClaimedJob {
  id: string;
  queue: string;
  type: string;
  payload: unknown;
  attempt: number;
  maxAttempts: number;
  leaseToken: string;
  leaseSeconds: number;
}

/** The fence: a transition applies only while the job is running under this token. */
export interface Lease {
  id: string;
  leaseToken: string;
}

export interface JobRow {
  id: string;
  queue: string;
  task_type: string;
  payload: unknown;
  status: JobStatus;
  priority: number;
  run_at: Date;
  attempts: number;
  max_attempts: number;
  lease_token: string;
  locked_at: Date | null;
  locked_by: string | null;
  lease_seconds: number;
  started_at: Date | null;
  finished_at: Date | null;
  created_at: Date;
  updated_at: Date;
  last_error: unknown;
  result: unknown;
  idempotency_key: string | null;
}

export const JOB_COLUMNS =
  'id, queue, task_type, payload, status, priority, run_at, attempts, max_attempts, lease_token, locked_at, locked_by, lease_seconds, started_at, finished_at, created_at, updated_at, last_error, result, idempotency_key';

export function toJob(r: JobRow): Job {
  return {
    id: String(r.id),
    queue: r.queue,
    type: r.task_type,
    payload: r.payload,
    status: r.status,
    priority: r.priority,
    runAt: r.run_at,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    leaseToken: String(r.lease_token),
    lockedAt: r.locked_at,
    lockedBy: r.locked_by,
    leaseSeconds: r.lease_seconds,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    lastError: r.last_error,
    result: r.result,
    idempotencyKey: r.idempotency_key,
  };
}
