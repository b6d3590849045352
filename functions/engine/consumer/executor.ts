import type { EngineLogger, RunnableTask } from '../contracts.ts';
import { coerceError, LeaseLostError, NonRetryableError } from '../errors.ts';
import type { Db } from '../queryable.ts';
import { storableResult } from '../sql/completeJobs.ts';
import type { CompletionBatcher } from './completion-batcher.ts';
import { ABANDONED, DeadlineError, type Held, TaskTimeoutError } from './held.ts';
import type { LeaseKeeper } from './lease-keeper.ts';
import type { OutcomeRecorder } from './recorder.ts';
import type { Statements } from './statements.ts';

export interface JobExecutorOptions {
  db: Db;
  statements: Pick<Statements, 'failJob'>;
  keeper: Pick<LeaseKeeper, 'drop' | 'toRelease'>;
  batcher: Pick<CompletionBatcher, 'add'>;
  recorder: OutcomeRecorder;
  /** Handed to tasks as ctx.logger. */
  logger: EngineLogger;
  backoffBaseSeconds: number;
  maxBackoffSeconds: number;
  /** The attempt is over (its outcome recorded or left to the reaper): frees its slot. */
  settled(h: Held): void;
}

/** The job's payload parsed by its task's schema; one that does not match throws (a permanent failure). */
function parsePayload(task: RunnableTask, h: Held): { data: unknown } {
  const parsed = task.schema.safeParse(h.job.payload);
  if (parsed.success) return parsed;
  const issues = parsed.error.issues
    .map((i) => `${i.path.join('.') || '(payload)'}: ${i.message}`)
    .join('; ');
  throw new NonRetryableError(`payload does not match the ${h.job.type} schema: ${issues}`);
}

/**
 * The context a task is given (TaskContext). A class for the cost alone: an object literal with
 * a getter was about 0.7 µs to create, each one defining its accessor anew, against a few dozen
 * ns for this. `signal` is read through the prototype's getter, so the AbortController is still
 * made only when the task asks for it.
 */
class RunContext {
  readonly jobId: string;
  readonly queue: string;
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly leaseToken: string;
  readonly #held: Held;
  constructor(
    held: Held,
    readonly logger: EngineLogger,
  ) {
    const { job } = held;
    this.jobId = job.id;
    this.queue = job.queue;
    this.attempt = job.attempt;
    this.maxAttempts = job.maxAttempts;
    this.leaseToken = job.leaseToken;
    this.#held = held;
  }
  get signal(): AbortSignal {
    return this.#held.signal;
  }
}

/**
 * Runs one job: task lookup, payload check, time budget, abort grace and abandonment, and the
 * outcome: a storable result goes to the completion batcher, a failure is recorded (retried with
 * backoff, or failed for good; fenced), a deadline stop is handed back to the lease keeper.
 */
export class JobExecutor {
  constructor(private readonly o: JobExecutorOptions) {}

  /**
   * The attempt is one promise that settles first with the task's result, its error, or
   * ABANDONED (ABORT_GRACE_MS after an abort the task ignored); its outcome is recorded in the
   * same step (one promise more only when recording waits for a statement, as a failure does).
   * A handful of allocations per job, since this is the hot path of a no-op drain.
   */
  execute(h: Held, task: RunnableTask | undefined): Promise<void> {
    const { job } = h;
    const startedAt = Date.now();
    h.startedAt = startedAt;
    let timer: NodeJS.Timeout | undefined;
    const logger = this.o.logger;
    const attempt = new Promise<unknown>((resolve, reject) => {
      // After an abort the task gets ABORT_GRACE_MS to settle. One that ignores its signal is
      // abandoned, not released: it may still be running, so only the lease expiry (and the
      // reaper) may hand the job to another worker.
      h.onAbandon = resolve;
      // A throw in here (unknown type, bad payload, a task that throws synchronously) rejects.
      if (!task) throw new NonRetryableError(`no task registered for type ${JSON.stringify(job.type)}`);
      const parsed = parsePayload(task, h);
      // The loop started it only if its timeout fits the time left.
      if (task.timeoutSeconds) {
        const seconds = task.timeoutSeconds;
        timer = setTimeout(() => h.abort(new TaskTimeoutError(seconds)), seconds * 1000);
      }
      const run = (task.run as (p: unknown, c: unknown) => Promise<unknown>)(
        parsed.data,
        new RunContext(h, logger),
      );
      Promise.resolve(run).then(resolve, reject);
    });
    return attempt.then(
      (value) => {
        if (timer) clearTimeout(timer);
        let recording: Promise<void> | undefined;
        try {
          recording = this.#finished(h, value, startedAt);
        } catch (err) {
          return this.#unrecorded(h, err);
        }
        return this.#settleAfter(h, recording);
      },
      (thrown) => {
        if (timer) clearTimeout(timer);
        return this.#settleAfter(h, this.recordFailure(h, coerceError(thrown), startedAt, Date.now()));
      },
    );
  }

  /** The slot frees once the outcome is recorded: now, or when `recording` settles. */
  #settleAfter(h: Held, recording: Promise<void> | undefined): Promise<void> | undefined {
    if (recording === undefined) {
      this.o.settled(h);
      return undefined;
    }
    return recording.then(
      () => this.o.settled(h),
      (err) => this.#unrecorded(h, err),
    );
  }

  /**
   * A database error while recording the outcome: the lease will expire and the reaper
   * requeues the job. Nothing is lost; the attempt is counted.
   */
  #unrecorded(h: Held, err: unknown): void {
    this.o.keeper.drop(h.job.id);
    this.o.recorder.logger.error('could not record job outcome', {
      worker: this.o.recorder.workerId,
      jobId: h.job.id,
      error: coerceError(err),
    });
    this.o.settled(h);
  }

  /** The task returned `value` (or was abandoned). */
  #finished(h: Held, value: unknown, startedAt: number): Promise<void> | undefined {
    const { job } = h;
    if (value === ABANDONED) {
      this.o.keeper.drop(job.id);
      this.o.recorder.abandoned(job, Date.now() - startedAt, coerceError(h.abortReason).message);
      return;
    }
    // Serialised once, here: a value jsonb cannot store fails this job alone, and the batch
    // completion sends the text as is.
    let resultJson: string;
    try {
      resultJson = storableResult(value);
    } catch (err) {
      return this.recordFailure(h, coerceError(err), startedAt, Date.now());
    }
    this.o.batcher.add({
      id: job.id,
      leaseToken: job.leaseToken,
      resultJson,
      type: job.type,
      claimedAt: h.claimedAt,
      startedAt,
      finishedAt: Date.now(),
    });
  }

  /** Records a failed attempt: retried with backoff, or failed for good. Fenced. */
  async recordFailure(h: Held, failure: Error, startedAt: number, finishedAt: number): Promise<void> {
    const { job } = h;
    const { recorder, keeper } = this.o;
    const reason = h.abortReason;
    if (reason instanceof DeadlineError) {
      h.deadline = true;
      keeper.toRelease.push(h);
      return;
    }
    if (reason instanceof LeaseLostError) {
      keeper.drop(job.id);
      recorder.lost(job.type, finishedAt - startedAt);
      return;
    }
    const permanent = failure instanceof NonRetryableError;
    const outcome = await recorder.guard('fail', () =>
      this.o.statements.failJob(this.o.db, {
        id: job.id,
        leaseToken: job.leaseToken,
        permanent,
        backoffBaseSeconds: this.o.backoffBaseSeconds,
        maxBackoffSeconds: this.o.maxBackoffSeconds,
        error: {
          message: failure.message,
          name: failure.name,
          stack: failure.stack,
          attempt: job.attempt,
          worker: recorder.workerId,
        },
      }),
    );
    keeper.drop(job.id);
    const meta = {
      worker: recorder.workerId,
      jobId: job.id,
      type: job.type,
      attempt: job.attempt,
      maxAttempts: job.maxAttempts,
      claimedAt: h.claimedAt,
      startedAt: h.startedAt,
      failedAt: finishedAt,
      error: { name: failure.name, message: failure.message, stack: failure.stack },
    };
    recorder.failure(outcome, job, finishedAt - startedAt, meta, permanent);
  }
}
