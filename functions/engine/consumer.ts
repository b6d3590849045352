import { coerceError, LeaseLostError, NonRetryableError, TaskEngineError } from './errors.ts';
import type { Db } from './queryable.ts';
import { claimJobs, pausedQueues } from './sql/claimJobs.ts';
import { completeAndClaim } from './sql/completeAndClaim.ts';
import { type Completion, completeJobs, isValueError, storableResult } from './sql/completeJobs.ts';
import { failJob } from './sql/failJob.ts';
import { DEFAULT_MAX_DEADLINE_RELEASES, releaseJobs } from './sql/releaseJobs.ts';
import { renewLeases } from './sql/renewLeases.ts';
import type { ClaimedJob } from './types.ts';
import { leavePresence, nextDueAt, touchPresence } from './wake.ts';

/** The slice of a structured logger the engine uses (Powertools' Logger fits). */
export interface EngineLogger {
  debug(message: string, ...extra: Array<Record<string, unknown>>): void;
  info(message: string, ...extra: Array<Record<string, unknown>>): void;
  warn(message: string, ...extra: Array<Record<string, unknown>>): void;
  error(message: string, ...extra: Array<Record<string, unknown>>): void;
}

export interface RunnableTask {
  type: string;
  schema: {
    safeParse(
      v: unknown,
    ):
      | { success: true; data: unknown }
      | { success: false; error: { issues: Array<{ path: PropertyKey[]; message: string }> } };
  };
  timeoutSeconds?: number;
  run(payload: never, ctx: never): Promise<unknown>;
}

export interface TaskLookup {
  get(type: string): RunnableTask | undefined;
}

export type RunOutcome = 'completed' | 'failed' | 'retried' | 'released' | 'lost' | 'abandoned';
export type DbOperation = 'claim' | 'complete' | 'fail' | 'renew' | 'release';

/** Hooks for per-container metrics; all optional. */
export interface ConsumerObserver {
  claimed?(latencyMs: number, count: number): void;
  ran?(type: string, outcome: RunOutcome, durationMs: number): void;
  dbError?(operation: DbOperation, err: unknown): void;
}

export interface ConsumerSettings {
  batchSize: number;
  concurrency: number;
  leaseSeconds: number;
  idleExitMs: number;
  pollMs: number;
  queues: readonly string[];
  advisoryLocks: boolean;
  backoffBaseSeconds: number;
  maxBackoffSeconds: number;
  /**
   * Deadline releases a job gets (stopped at an invocation deadline, or not started because its
   * timeoutSeconds is longer than a whole invocation) before the next such stop fails it. Default 3.
   */
  maxDeadlineReleases?: number;
  /** How often, at most, claimed jobs waiting for a slot are checked against paused queues (ms). Default 250. */
  pauseCheckMs?: number;
  /**
   * Wake on enqueue (migration 0010): while claiming, the invocation is live for this long after
   * each touch of its presence row (touched every quarter of it, before a claim), so the api does
   * not invoke another. One whose slots stay full claims nothing and lapses: the api's next
   * enqueue then wakes another for the backlog. 0 (the default): no presence.
   */
  liveMs?: number;
  /**
   * An invocation that saw work arrive while it polled (a claim found jobs after an empty one)
   * stays this long after its last job, polling every stayPollMs, instead of exiting after
   * idleExitMs: a trickle keeps one consumer. Never into the deadline. Default 0.
   */
  stayMs?: number;
  /** The poll interval once idle for longer than idleExitMs. Default: pollMs. */
  stayPollMs?: number;
  /**
   * Precise delays: before exiting idle, an invocation stays until the earliest queued job due
   * within this much time (and within its remaining time), and claims it at its run_at. Default 0.
   */
  delayStayMs?: number;
}

export interface InvocationContext {
  /** The Lambda request id, or the local engine's invocation id. Recorded as locked_by. */
  workerId: string;
  remainingMs(): number;
  /** Set to stop claiming (Ctrl-C locally): running tasks finish or are released. */
  stopSignal?: AbortSignal;
}

export interface ConsumerSummary {
  workerId: string;
  claimed: number;
  completed: number;
  failed: number;
  retried: number;
  released: number;
  lost: number;
  /** Tasks that ignored their abort past the deadline: left for the reaper after their lease. */
  abandoned: number;
  exitReason: 'idle' | 'deadline' | 'stopped' | 'error';
  /** The last claim came back full: there is probably a backlog (fan-out hint). */
  backlog: boolean;
  /** Times the invocation stayed for a job due later (delayStayMs). */
  stayedForDue: number;
  durationMs: number;
}

export class DeadlineError extends TaskEngineError {
  constructor() {
    super('deadline', 'invocation deadline reached before the task finished');
    this.name = 'DeadlineError';
  }
}
export class TaskTimeoutError extends TaskEngineError {
  constructor(seconds: number) {
    super('task_timeout', `task exceeded its timeout of ${seconds}s`);
    this.name = 'TaskTimeoutError';
  }
}

/** How long aborted tasks get to settle before they count as abandoned. */
const ABORT_GRACE_MS = 500;
/** Kept after the final statements for the metrics push and the return (the push takes what is left, less 100 ms). */
const FINAL_RESERVE_MS = 300;

/**
 * Time kept back from the invocation for the work after the deadline: the abort grace, then
 * flushing completions, releasing unstarted jobs and pushing metrics (1 s push timeout).
 * 3 s covers that with room; short invocations (tests, local) keep a quarter, never less than
 * the grace, the final reserve and 200 ms for the final round trips.
 */
export function deadlineMargin(initialRemainingMs: number): number {
  return Math.min(
    3000,
    Math.max(ABORT_GRACE_MS + FINAL_RESERVE_MS + 200, Math.floor(initialRemainingMs * 0.25)),
  );
}
const ABANDONED = Symbol('abandoned');
/** An idle invocation stops staying (for a trickle or a due job) this close to its deadline. */
const STAY_RESERVE_MS = 1000;

/**
 * One claimed job. Its AbortController is made only when the task reads `ctx.signal`: creating
 * one per job cost ~15 µs (a sixth of the handler's per-job CPU in a 20,000-job profile), and most
 * short tasks never look at it. Likewise nothing waits for abandonment until an abort happens.
 */
class Held {
  startedAt?: number;
  done?: Promise<void>;
  settled = false;
  /** Stopped by the invocation deadline (aborted there, or its timeout exceeds a whole invocation): a counted release. */
  deadline = false;
  abortReason: unknown;
  #controller: AbortController | undefined;
  /** Set by execute: settles the attempt as abandoned. */
  onAbandon: (() => void) | undefined;
  constructor(
    readonly job: ClaimedJob,
    readonly claimedAt: number,
  ) {}
  get aborted(): boolean {
    return this.abortReason !== undefined;
  }
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.aborted) this.#controller.abort(this.abortReason);
    }
    return this.#controller.signal;
  }
  /** Aborts the task; if it has not settled after ABORT_GRACE_MS it counts as abandoned. */
  abort(reason: Error): void {
    if (this.aborted) return;
    this.abortReason = reason;
    this.#controller?.abort(reason);
    setTimeout(() => this.onAbandon?.(), ABORT_GRACE_MS).unref?.();
  }
}

type PendingCompletion = Completion & {
  resultJson: string;
  type: string;
  claimedAt: number;
  startedAt: number;
  finishedAt: number;
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * One consumer invocation: claim → run → complete/fail, until the queue stays empty for
 * `idleExitMs`, the remaining time cannot fit more work, or a stop is requested. Leases are
 * renewed every third of `leaseSeconds`; at the deadline running tasks are aborted, and jobs
 * that did not run to the end are released without consuming an attempt. A job stopped by the
 * deadline (aborted there, or not started because its timeoutSeconds is longer than a whole
 * invocation) is a counted release: after `maxDeadlineReleases` of them the next one fails it
 * ("exceeds the invocation time"), so no job is claimed without bound.
 */
export async function runConsumer(
  deps: {
    db: Db;
    tasks: TaskLookup;
    logger: EngineLogger;
    settings: ConsumerSettings;
    observer?: ConsumerObserver;
  },
  ctx: InvocationContext,
): Promise<ConsumerSummary> {
  const { db, tasks, logger, settings: s, observer } = deps;
  const started = Date.now();
  const margin = deadlineMargin(ctx.remainingMs());
  /** What this invocation had to run tasks in: a timeout longer than this never fits one like it. */
  const budgetMs = ctx.remainingMs() - margin;
  /** Read live: the local engine shortens the remaining time on Ctrl-C. */
  const timeLeft = () => ctx.remainingMs() - margin;
  const summary: ConsumerSummary = {
    workerId: ctx.workerId,
    claimed: 0,
    completed: 0,
    failed: 0,
    retried: 0,
    released: 0,
    lost: 0,
    abandoned: 0,
    exitReason: 'idle',
    backlog: false,
    stayedForDue: 0,
    durationMs: 0,
  };
  const held = new Map<string, Held>();
  const waiting: Held[] = [];
  const running = new Set<Held>();
  const toComplete: PendingCompletion[] = [];
  const toRelease: Held[] = [];
  /** Claimed jobs whose task's timeoutSeconds did not fit the time left: released at the end. */
  const deferred: Held[] = [];
  /** Set when a job that fits a whole invocation no longer fits this one: claim nothing more. */
  let outOfTime = false;
  const maxDeadlineReleases = s.maxDeadlineReleases ?? DEFAULT_MAX_DEADLINE_RELEASES;
  const pauseCheckMs = s.pauseCheckMs ?? 250;
  /** When the paused queues were last known: the claim itself skips paused queues. */
  let pauseCheckedAt = 0;
  let wake: () => void = () => {};
  const wakeUp = () => wake();

  const guard = async <T>(op: DbOperation, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      observer?.dbError?.(op, err);
      throw err;
    }
  };

  const liveMs = s.liveMs ?? 0;
  const stayPollMs = s.stayPollMs ?? s.pollMs;
  /** The presence row is believed current (touched and not left). */
  let present = false;
  let touchedAt = 0;
  /** A claim came back empty; then `arrivals`: a later one found work (a trickle). */
  let claimedEmpty = false;
  let arrivals = false;
  /** Left before a last claim: that claim does not touch again. */
  let leaving = false;
  /** Staying for a job due at this time (epoch ms); 0: none. */
  let dueAt = 0;
  /** Earliest retry (failJob's runAt) seen: a due time the invocation knows without a read. */
  let retryAt = Number.POSITIVE_INFINITY;
  /** Presence writes are best effort: an error costs at most an extra invoke or a later start. */
  const touch = async () => {
    if (liveMs <= 0 || leaving || (present && Date.now() - touchedAt < liveMs / 4)) return;
    try {
      await touchPresence(db, ctx.workerId, s.queues, liveMs);
      present = true;
      touchedAt = Date.now();
    } catch (err) {
      logger.warn('could not record consumer presence', {
        worker: ctx.workerId,
        error: coerceError(err).message,
      });
    }
  };
  const leave = async () => {
    if (!present) return;
    present = false;
    try {
      await leavePresence(db, ctx.workerId);
    } catch (err) {
      logger.warn('could not remove consumer presence; it expires', {
        worker: ctx.workerId,
        error: coerceError(err).message,
      });
    }
  };
  /** The earliest job due within delayStayMs that fits the time left (epoch ms), or 0. */
  const nextDue = async (): Promise<number> => {
    const horizon = Math.min(s.delayStayMs ?? 0, timeLeft() - STAY_RESERVE_MS);
    if (horizon <= 0) return 0;
    const now = Date.now();
    let at = retryAt > now && retryAt - now <= horizon ? retryAt : Number.POSITIVE_INFINITY;
    try {
      const found = await nextDueAt(db, s.queues, horizon);
      if (found !== undefined && found < at) at = found;
    } catch (err) {
      logger.warn('could not read the next due job; exiting', {
        worker: ctx.workerId,
        error: coerceError(err).message,
      });
    }
    return Number.isFinite(at) ? at : 0;
  };

  /** Records the outcome of a completion statement: `done` holds the ids that completed. */
  const settleCompletions = (batch: PendingCompletion[], done: Set<string>) => {
    const at = new Date().toISOString();
    const lines = [];
    for (const c of batch) {
      held.delete(c.id);
      if (done.has(c.id)) {
        summary.completed++;
        observer?.ran?.(c.type, 'completed', c.finishedAt - c.startedAt);
        lines.push({
          jobId: c.id,
          type: c.type,
          claimedAt: c.claimedAt,
          startedAt: c.startedAt,
          completedAt: c.finishedAt,
        });
      } else {
        summary.lost++;
        observer?.ran?.(c.type, 'lost', c.finishedAt - c.startedAt);
        logger.warn('lease lost before completion; result discarded', {
          worker: ctx.workerId,
          jobId: c.id,
          type: c.type,
        });
      }
    }
    if (lines.length > 0)
      logger.info('jobs completed', { worker: ctx.workerId, count: lines.length, at, jobs: lines });
  };

  /**
   * The database refused a batch completion because of a value in it (storableResult catches
   * every case known, this is the net under it): completes the jobs one by one, and the job
   * whose result is refused fails alone, "result not storable".
   */
  const completeEach = async (batch: PendingCompletion[], err: unknown) => {
    logger.warn('the database refused a value in a batch completion; completing its jobs one by one', {
      worker: ctx.workerId,
      count: batch.length,
      error: coerceError(err).message,
    });
    for (const c of batch) {
      let done: Set<string>;
      try {
        done = await guard('complete', () => completeJobs(db, [c]));
      } catch (one) {
        if (!isValueError(one)) throw one;
        const h = held.get(c.id);
        if (h)
          await recordFailure(
            h,
            new NonRetryableError(`result not storable: ${coerceError(one).message}`),
            c.startedAt,
            c.finishedAt,
          );
        continue;
      }
      settleCompletions([c], done);
    }
  };

  const flushCompletions = async () => {
    if (toComplete.length === 0) return;
    const batch = toComplete.splice(0, toComplete.length);
    let done: Set<string>;
    try {
      done = await guard('complete', () => completeJobs(db, batch));
    } catch (err) {
      if (!isValueError(err)) throw err;
      return completeEach(batch, err);
    }
    settleCompletions(batch, done);
  };

  /**
   * The next claim. Pending completions ride along in the same call (completeAndClaim: the
   * fenced completion runs first, then the claim, on either path): one round trip per batch
   * instead of two.
   */
  const claimNext = async (): Promise<ClaimedJob[]> => {
    const options = {
      workerId: ctx.workerId,
      limit: s.batchSize,
      leaseSeconds: s.leaseSeconds,
      queues: s.queues,
      advisoryLocks: s.advisoryLocks,
    };
    const t0 = performance.now();
    let claimed: ClaimedJob[];
    if (toComplete.length > 0) {
      const batch = toComplete.splice(0, toComplete.length);
      let out: Awaited<ReturnType<typeof completeAndClaim>> | undefined;
      try {
        out = await guard('claim', () => completeAndClaim(db, batch, options));
      } catch (err) {
        if (!isValueError(err)) throw err;
        await completeEach(batch, err);
      }
      if (out) {
        settleCompletions(batch, out.completed);
        claimed = out.claimed;
      } else claimed = await guard('claim', () => claimJobs(db, options));
    } else {
      await flushCompletions();
      claimed = await guard('claim', () => claimJobs(db, options));
    }
    pauseCheckedAt = Date.now();
    observer?.claimed?.(performance.now() - t0, claimed.length);
    return claimed;
  };

  /**
   * Hands `batch` back. Deadline stops (h.deadline) are counted in the row, and a job out of
   * deadline releases ends `failed` instead (jobs_release); a consumer that was stopped counts
   * none: the stop is not the job's doing.
   */
  const release = async (batch: Held[], reason: string) => {
    if (batch.length === 0) return;
    const counted = summary.exitReason !== 'stopped';
    const outcome = await guard('release', () =>
      releaseJobs(
        db,
        batch.map((h) => ({ id: h.job.id, leaseToken: h.job.leaseToken, deadline: counted && h.deadline })),
        reason,
        maxDeadlineReleases,
      ),
    );
    let released = 0;
    for (const h of batch) {
      held.delete(h.job.id);
      const status = outcome.get(h.job.id);
      const ms = h.startedAt ? Date.now() - h.startedAt : 0;
      if (status === 'queued') {
        released++;
        summary.released++;
        observer?.ran?.(h.job.type, 'released', ms);
      } else if (status === 'failed') {
        summary.failed++;
        observer?.ran?.(h.job.type, 'failed', ms);
        logger.error('job failed: it exceeds the invocation time', {
          worker: ctx.workerId,
          jobId: h.job.id,
          type: h.job.type,
          maxDeadlineReleases,
        });
      } else summary.lost++;
    }
    logger.info('jobs released', {
      worker: ctx.workerId,
      reason,
      released,
      jobIds: batch.map((h) => h.job.id),
    });
  };

  /**
   * Pause means pause: claimed jobs still waiting for a slot whose queue was paused since are
   * released (no attempt consumed) instead of started. One small read of `queues`, at most every
   * pauseCheckMs and only when a job is about to start that was claimed longer ago than that.
   */
  const releasePaused = async () => {
    pauseCheckedAt = Date.now();
    let paused: Set<string>;
    try {
      paused = await guard('claim', () => pausedQueues(db, [...new Set(waiting.map((h) => h.job.queue))]));
    } catch (err) {
      logger.warn('could not read the paused queues; starting the claimed jobs', {
        worker: ctx.workerId,
        error: coerceError(err),
      });
      return;
    }
    if (paused.size === 0) return;
    const out: Held[] = [];
    let kept = 0;
    for (const h of waiting) {
      if (paused.has(h.job.queue)) out.push(h);
      else waiting[kept++] = h;
    }
    waiting.length = kept;
    await release(out, 'queue paused');
  };

  /** Records a failed attempt: retried with backoff, or failed for good. Fenced. */
  const recordFailure = async (h: Held, failure: Error, startedAt: number, finishedAt: number) => {
    const { job } = h;
    const reason = h.abortReason;
    if (reason instanceof DeadlineError || reason instanceof LeaseLostError) {
      if (reason instanceof DeadlineError) {
        h.deadline = true;
        toRelease.push(h);
      } else {
        held.delete(job.id);
        summary.lost++;
        observer?.ran?.(job.type, 'lost', finishedAt - startedAt);
      }
      return;
    }
    const permanent = failure instanceof NonRetryableError;
    const outcome = await guard('fail', () =>
      failJob(db, {
        id: job.id,
        leaseToken: job.leaseToken,
        permanent,
        backoffBaseSeconds: s.backoffBaseSeconds,
        maxBackoffSeconds: s.maxBackoffSeconds,
        error: {
          message: failure.message,
          name: failure.name,
          stack: failure.stack,
          attempt: job.attempt,
          worker: ctx.workerId,
        },
      }),
    );
    held.delete(job.id);
    const meta = {
      worker: ctx.workerId,
      jobId: job.id,
      type: job.type,
      attempt: job.attempt,
      maxAttempts: job.maxAttempts,
      claimedAt: h.claimedAt,
      startedAt: h.startedAt,
      failedAt: finishedAt,
      error: { name: failure.name, message: failure.message, stack: failure.stack },
    };
    if (outcome === null) {
      summary.lost++;
      observer?.ran?.(job.type, 'lost', finishedAt - startedAt);
      logger.warn('lease lost before recording a failure', meta);
    } else if (outcome.status === 'failed') {
      summary.failed++;
      observer?.ran?.(job.type, 'failed', finishedAt - startedAt);
      logger.error('job failed', { ...meta, final: true, permanent });
    } else {
      summary.retried++;
      const at = new Date(outcome.runAt).getTime();
      if (at < retryAt) retryAt = at;
      observer?.ran?.(job.type, 'retried', finishedAt - startedAt);
      logger.warn('job failed; will retry', { ...meta, retryAt: outcome.runAt });
    }
  };

  /**
   * Runs one job. The attempt is one promise that settles first with the task's result, its
   * error, or ABANDONED (ABORT_GRACE_MS after an abort the task ignored); a handful of
   * allocations per job, since this is the hot path of a no-op drain.
   */
  const execute = (h: Held, task: RunnableTask | undefined): Promise<void> => {
    const { job } = h;
    const startedAt = Date.now();
    h.startedAt = startedAt;
    let timer: NodeJS.Timeout | undefined;
    const attempt = new Promise<unknown>((resolve, reject) => {
      // After an abort the task gets ABORT_GRACE_MS to settle. One that ignores its signal is
      // abandoned, not released: it may still be running, so only the lease expiry (and the
      // reaper) may hand the job to another worker.
      h.onAbandon = () => resolve(ABANDONED);
      // A throw in here (unknown type, bad payload, a task that throws synchronously) rejects.
      if (!task) throw new NonRetryableError(`no task registered for type ${JSON.stringify(job.type)}`);
      const parsed = task.schema.safeParse(job.payload);
      if (!parsed.success) {
        const issues = parsed.error.issues
          .map((i) => `${i.path.join('.') || '(payload)'}: ${i.message}`)
          .join('; ');
        throw new NonRetryableError(`payload does not match the ${job.type} schema: ${issues}`);
      }
      // The start loop started it only if its timeout fits the time left.
      if (task.timeoutSeconds) {
        timer = setTimeout(
          () => h.abort(new TaskTimeoutError(task.timeoutSeconds!)),
          task.timeoutSeconds * 1000,
        );
      }
      const run = (task.run as (p: unknown, c: unknown) => Promise<unknown>)(parsed.data, {
        jobId: job.id,
        queue: job.queue,
        attempt: job.attempt,
        maxAttempts: job.maxAttempts,
        leaseToken: job.leaseToken,
        get signal() {
          return h.signal;
        },
        logger,
      });
      Promise.resolve(run).then(resolve, reject);
    });
    const settle = () => {
      h.settled = true;
      running.delete(h);
      wakeUp();
    };
    return attempt
      .then(
        (value) => {
          if (timer) clearTimeout(timer);
          if (value === ABANDONED) {
            held.delete(job.id);
            summary.abandoned++;
            observer?.ran?.(job.type, 'abandoned', Date.now() - startedAt);
            logger.error('task ignored its abort signal; the reaper will recover the job after its lease', {
              worker: ctx.workerId,
              jobId: job.id,
              type: job.type,
              reason: coerceError(h.abortReason).message,
            });
            return;
          }
          // Serialised once, here: a value jsonb cannot store fails this job alone, and the
          // batch completion sends the text as is.
          let resultJson: string;
          try {
            resultJson = storableResult(value);
          } catch (err) {
            return recordFailure(h, coerceError(err), startedAt, Date.now());
          }
          toComplete.push({
            id: job.id,
            leaseToken: job.leaseToken,
            resultJson,
            type: job.type,
            claimedAt: h.claimedAt,
            startedAt,
            finishedAt: Date.now(),
          });
        },
        (thrown) => {
          if (timer) clearTimeout(timer);
          return recordFailure(h, coerceError(thrown), startedAt, Date.now());
        },
      )
      .then(settle, (err) => {
        // A database error while recording the outcome: the lease will expire and the reaper
        // requeues the job. Nothing is lost; the attempt is counted.
        held.delete(job.id);
        logger.error('could not record job outcome', {
          worker: ctx.workerId,
          jobId: job.id,
          error: coerceError(err),
        });
        settle();
      });
  };

  // Heartbeat: renew every lease held every third of the lease: waiting, running, and finished
  // but not yet flushed (a completion waiting for the next claim must not let its lease lapse,
  // or the reaper would requeue finished work; the fault suite caught exactly that).
  const heartbeatMs = Math.max(250, (s.leaseSeconds * 1000) / 3);
  const flushAfterMs = Math.min(1000, heartbeatMs);
  let heartbeatBusy = false;
  const heartbeat = setInterval(async () => {
    if (heartbeatBusy || held.size === 0) return;
    heartbeatBusy = true;
    const leases = [...held.values()].map((h) => h.job);
    try {
      const renewed = await guard('renew', () => renewLeases(db, leases));
      for (const job of leases) {
        if (renewed.has(job.id)) continue;
        const h = held.get(job.id);
        if (!h || h.settled) continue;
        logger.warn('lease lost; aborting task', { worker: ctx.workerId, jobId: job.id, type: job.type });
        h.abort(new LeaseLostError([job.id]));
        const idx = waiting.indexOf(h);
        if (idx >= 0) {
          waiting.splice(idx, 1);
          held.delete(job.id);
          summary.lost++;
        }
      }
    } catch (err) {
      logger.warn('lease renewal failed; will retry', { worker: ctx.workerId, error: coerceError(err) });
    } finally {
      heartbeatBusy = false;
    }
  }, heartbeatMs);
  heartbeat.unref?.();

  let lastWorkAt = Date.now();
  try {
    for (;;) {
      if (ctx.stopSignal?.aborted) {
        summary.exitReason = 'stopped';
        break;
      }
      if (timeLeft() <= 0) {
        summary.exitReason = 'deadline';
        break;
      }
      if (outOfTime && waiting.length === 0 && running.size === 0) {
        summary.exitReason = 'deadline';
        break;
      }
      let claimedNothing = false;
      if (waiting.length === 0 && running.size < s.concurrency && !outOfTime) {
        await touch();
        const claimed = await claimNext();
        summary.claimed += claimed.length;
        summary.backlog = claimed.length === s.batchSize;
        const now = Date.now();
        for (const job of claimed) {
          const h = new Held(job, now);
          held.set(job.id, h);
          waiting.push(h);
        }
        if (claimed.length > 0) {
          // Work that arrived after an empty claim: a trickle, worth staying for.
          if (claimedEmpty) arrivals = true;
          lastWorkAt = now;
          // The last claim found work after all: live again.
          leaving = false;
          dueAt = 0;
        } else {
          claimedNothing = true;
          claimedEmpty = true;
        }
      }
      // Completions ride with the next claim; flush them on their own when a full batch has
      // piled up or the oldest has waited a while (slow tasks keep the next claim away).
      if (
        toComplete.length >= s.batchSize ||
        (toComplete.length > 0 && Date.now() - toComplete[0]!.finishedAt > flushAfterMs)
      ) {
        await flushCompletions();
      }
      if (
        waiting.length > 0 &&
        running.size < s.concurrency &&
        Date.now() - pauseCheckedAt >= pauseCheckMs &&
        timeLeft() > 0
      )
        await releasePaused();
      while (waiting.length > 0 && running.size < s.concurrency && timeLeft() > 0) {
        const h = waiting.shift()!;
        const task = tasks.get(h.job.type);
        // A task that cannot finish in the time left is not started: it is held (its lease
        // renewed) and released at the end, so that a fresh invocation can take it with its
        // full time. If it does not fit even a whole invocation like this one the release is a
        // counted deadline stop (a job longer than any invocation ends `failed`); otherwise this
        // invocation is near its end, and it claims nothing more (which would only be held and
        // handed back too).
        if (task?.timeoutSeconds !== undefined && task.timeoutSeconds * 1000 > timeLeft()) {
          if (task.timeoutSeconds * 1000 > budgetMs) h.deadline = true;
          else outOfTime = true;
          deferred.push(h);
          continue;
        }
        running.add(h);
        h.done = execute(h, task);
      }
      if (claimedNothing && running.size === 0 && waiting.length === 0) {
        await flushCompletions();
        // An invocation that saw work arrive while it polled stays for stayMs after the last job
        // (a trickle keeps it); otherwise it leaves after idleExitMs. Staying for a due job ends
        // a poll after its run_at. Neither stay runs into the deadline: an idle invocation ends
        // idle, so only a busy one ends at its deadline (and has a successor invoked).
        const idleLimit = arrivals ? Math.max(s.idleExitMs, s.stayMs ?? 0) : s.idleExitMs;
        const now = Date.now();
        const idleFor = now - lastWorkAt;
        const mustGo = idleFor >= s.idleExitMs && timeLeft() <= Math.max(STAY_RESERVE_MS, 4 * stayPollMs);
        if (leaving) {
          // Left, and the last claim (after the presence row went) found nothing: any job
          // enqueued since then made its api invoke.
          summary.exitReason = 'idle';
          break;
        }
        if (mustGo || (idleFor >= idleLimit && (dueAt === 0 || now > dueAt + stayPollMs))) {
          dueAt = 0;
          const due = mustGo ? 0 : await nextDue();
          if (due > 0) {
            dueAt = due;
            summary.stayedForDue++;
          } else if (liveMs > 0 && present) {
            await leave();
            leaving = true;
            continue;
          } else {
            summary.exitReason = 'idle';
            break;
          }
        }
      }
      if (running.size >= s.concurrency || claimedNothing || outOfTime) {
        const idlePoll = Date.now() - lastWorkAt > s.idleExitMs ? stayPollMs : s.pollMs;
        // Staying for a due job: wake at its run_at, not a poll later.
        const untilDue = dueAt > 0 ? Math.max(1, dueAt - Date.now()) : Number.POSITIVE_INFINITY;
        const waitMs = Math.min(
          claimedNothing ? Math.min(idlePoll, untilDue) : 1000,
          Math.max(1, timeLeft()),
        );
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            ctx.stopSignal?.removeEventListener('abort', done);
            resolve();
          };
          const timer = setTimeout(done, waitMs);
          wake = done;
          ctx.stopSignal?.addEventListener('abort', done, { once: true });
        });
        wake = () => {};
      }
    }
  } catch (err) {
    summary.exitReason = 'error';
    logger.error('consumer loop failed; held jobs will be released or recovered by the reaper', {
      worker: ctx.workerId,
      error: coerceError(err),
    });
  }

  // No longer claiming: the api wakes another invocation for new work.
  await leave();
  // Wind down: unstarted jobs go back; running ones finish until the deadline, then are aborted.
  for (const h of waiting.splice(0)) toRelease.push(h);
  for (const h of deferred.splice(0)) toRelease.push(h);
  /**
   * Waits for `work`, but never past the invocation's end less FINAL_RESERVE_MS: on a silent
   * database a statement may otherwise wait out its connect and query timeouts and the handler
   * would overrun its deadline. Work given up on is left to the reaper (leases expire).
   */
  const beforeEnd = async (what: string, work: () => Promise<unknown>): Promise<void> => {
    const left = ctx.remainingMs() - FINAL_RESERVE_MS;
    const settled = work().then(
      () => true,
      (err) => {
        logger.error(`${what} failed; the reaper will requeue these jobs after their lease`, {
          worker: ctx.workerId,
          error: coerceError(err),
        });
        return true;
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, left));
    });
    const done = await Promise.race([settled, expired]);
    clearTimeout(timer);
    if (!done)
      logger.error(
        `${what} did not finish before the deadline; the reaper will requeue these jobs after their lease`,
        { worker: ctx.workerId },
      );
  };

  if (running.size > 0) {
    // Running tasks may finish until the deadline; then they are aborted and settle (or are
    // abandoned) within the grace period.
    const all = Promise.all([...running].map((h) => h.done));
    await Promise.race([all, sleep(Math.max(0, timeLeft()))]);
    for (const h of running) h.abort(new DeadlineError());
    await beforeEnd('recording the last outcomes', () => all);
  }
  clearInterval(heartbeat);
  await beforeEnd('final completion flush', flushCompletions);
  await beforeEnd('release', () =>
    release(
      toRelease.splice(0, toRelease.length),
      summary.exitReason === 'stopped' ? 'consumer stopped' : 'invocation deadline',
    ),
  );
  summary.durationMs = Date.now() - started;
  return summary;
}
