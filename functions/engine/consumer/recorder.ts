import type {
  ConsumerDbOperation,
  ConsumerObserver,
  ConsumerSummary,
  EngineLogger,
  RunOutcome,
} from '../contracts.ts';
import type { Completion } from '../sql/completeJobs.ts';
import type { FailOutcome } from '../sql/failJob.ts';
import type { ClaimedJob } from '../types.ts';

/** A finished job whose completion waits for the next batch statement. */
export interface PendingCompletion extends Completion {
  resultJson: string;
  type: string;
  claimedAt: number;
  startedAt: number;
  finishedAt: number;
}

/**
 * One job of the `jobs completed` line. A class, not an object literal, for the cost alone: the
 * Powertools logger deep-copies every plain object and array it is given before serialising,
 * and assigns class instances by reference; the JSON written is the same.
 */
class CompletedLine {
  constructor(
    readonly jobId: string,
    readonly type: string,
    readonly claimedAt: number,
    readonly startedAt: number,
    readonly completedAt: number,
  ) {}
}

/**
 * The one place an outcome is recorded: the invocation's summary, the observer (metrics) and the
 * log line go together here, so that no path counts one and forgets another.
 */
export class OutcomeRecorder {
  readonly summary: ConsumerSummary;
  /** Earliest retry time (epoch ms) recorded: a due time the invocation knows without a read. */
  retryAt = Number.POSITIVE_INFINITY;

  constructor(
    readonly workerId: string,
    readonly logger: EngineLogger,
    readonly observer: ConsumerObserver | undefined,
  ) {
    this.summary = {
      workerId,
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
  }

  /** Runs a statement; a throw is counted as a database error of `op` and rethrown. */
  async guard<T>(op: ConsumerDbOperation, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      this.observer?.dbError?.(op, err);
      throw err;
    }
  }

  claimed(latencyMs: number, count: number, batchSize: number): void {
    this.summary.claimed += count;
    this.summary.backlog = count === batchSize;
    this.observer?.claimed?.(latencyMs, count);
  }

  /** Counts the outcome in the summary (its counters are named after the outcomes) and observes it. */
  #ran(type: string, outcome: RunOutcome, ms: number): void {
    this.summary[outcome]++;
    this.observer?.ran?.(type, outcome, ms);
  }

  /** A completion statement's answer: `done` holds the ids that completed, the others lost their lease. */
  completions(batch: readonly PendingCompletion[], done: Set<string>): void {
    const at = new Date().toISOString();
    const lines: CompletedLine[] = [];
    for (const c of batch) {
      if (done.has(c.id)) {
        this.#ran(c.type, 'completed', c.finishedAt - c.startedAt);
        lines.push(new CompletedLine(c.id, c.type, c.claimedAt, c.startedAt, c.finishedAt));
      } else {
        this.lost(c.type, c.finishedAt - c.startedAt);
        this.logger.warn('lease lost before completion; result discarded', this.#about(c));
      }
    }
    if (lines.length > 0)
      this.logger.info('jobs completed', { worker: this.workerId, count: lines.length, at, jobs: lines });
  }

  /** A lease lost while (or after) the task ran. */
  lost(type: string, ms: number): void {
    this.#ran(type, 'lost', ms);
  }

  /** A lease lost before the task started (or a release that found the job no longer ours): nothing ran. */
  lostUnstarted(): void {
    this.summary.lost++;
  }

  /** A failure statement's answer: null when the lease was lost, else failed for good or retried. */
  failure(
    outcome: FailOutcome | null,
    job: ClaimedJob,
    ms: number,
    meta: Record<string, unknown>,
    permanent: boolean,
  ): void {
    if (outcome === null) {
      this.lost(job.type, ms);
      this.logger.warn('lease lost before recording a failure', meta);
    } else if (outcome.status === 'failed') {
      this.#ran(job.type, 'failed', ms);
      this.logger.error('job failed', { ...meta, final: true, permanent });
    } else {
      const at = new Date(outcome.runAt).getTime();
      if (at < this.retryAt) this.retryAt = at;
      this.#ran(job.type, 'retried', ms);
      this.logger.warn('job failed; will retry', { ...meta, retryAt: outcome.runAt });
    }
  }

  abandoned(job: ClaimedJob, ms: number, reason: string): void {
    this.#ran(job.type, 'abandoned', ms);
    this.logger.error(
      'task ignored its abort signal; the reaper will recover the job after its lease',
      this.#about(job, { reason }),
    );
  }

  released(job: ClaimedJob, ms: number): void {
    this.#ran(job.type, 'released', ms);
  }

  /** A deadline release past maxDeadlineReleases: the job failed, it exceeds the invocation time. */
  outOfReleases(job: ClaimedJob, ms: number, maxDeadlineReleases: number): void {
    this.#ran(job.type, 'failed', ms);
    this.logger.error(
      'job failed: it exceeds the invocation time',
      this.#about(job, { maxDeadlineReleases }),
    );
  }

  /** The log fields naming a job (and `extra`). */
  #about(job: { id: string; type: string }, extra?: Record<string, unknown>): Record<string, unknown> {
    return { worker: this.workerId, jobId: job.id, type: job.type, ...extra };
  }
}
