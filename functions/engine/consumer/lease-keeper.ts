import type { EngineLogger } from '../contracts.ts';
import { coerceError, LeaseLostError } from '../errors.ts';
import type { Db } from '../queryable.ts';
import type { ClaimedJob } from '../types.ts';
import { Held } from './held.ts';
import type { OutcomeRecorder } from './recorder.ts';
import type { Statements } from './statements.ts';

export interface LeaseKeeperOptions {
  db: Db;
  statements: Pick<Statements, 'renewLeases' | 'releaseJobs'>;
  recorder: OutcomeRecorder;
  logger: EngineLogger;
  workerId: string;
  leaseSeconds: number;
  maxDeadlineReleases: number;
  /** Takes a job whose lease was lost out of the jobs waiting for a slot; true if it was waiting. */
  withdraw(h: Held): boolean;
}

/**
 * Every lease the invocation holds, from the claim until the outcome is recorded: waiting for a
 * slot, running, and finished but not yet flushed (a completion waiting for the next claim must
 * not let its lease lapse, or the reaper would requeue finished work; the fault suite caught
 * exactly that). The heartbeat renews them all every third of the lease and aborts the task of
 * a lease lost; `release` hands leases back.
 */
export class LeaseKeeper {
  readonly held = new Map<string, Held>();
  /** Jobs to hand back at the end (stopped at the deadline, never started). */
  readonly toRelease: Held[] = [];
  readonly heartbeatMs: number;
  #busy = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: LeaseKeeperOptions) {
    this.heartbeatMs = Math.max(250, (o.leaseSeconds * 1000) / 3);
  }

  hold(job: ClaimedJob, claimedAt: number): Held {
    const h = new Held(job, claimedAt);
    this.held.set(job.id, h);
    return h;
  }

  get(id: string): Held | undefined {
    return this.held.get(id);
  }

  /** The job's outcome is recorded (or left to the reaper): its lease is no longer renewed. */
  drop(id: string): void {
    this.held.delete(id);
  }

  start(): void {
    this.#timer = setInterval(() => void this.renew(), this.heartbeatMs);
    this.#timer.unref?.();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** One heartbeat: renews every lease held; a task whose lease is lost is aborted. */
  async renew(): Promise<void> {
    if (this.#busy || this.held.size === 0) return;
    this.#busy = true;
    const { recorder, logger, workerId } = this.o;
    const leases = [...this.held.values()].map((h) => h.job);
    try {
      const renewed = await recorder.guard('renew', () => this.o.statements.renewLeases(this.o.db, leases));
      for (const job of leases) {
        if (renewed.has(job.id)) continue;
        const h = this.held.get(job.id);
        if (!h || h.settled) continue;
        logger.warn('lease lost; aborting task', { worker: workerId, jobId: job.id, type: job.type });
        h.abort(new LeaseLostError([job.id]));
        if (this.o.withdraw(h)) {
          this.held.delete(job.id);
          recorder.lostUnstarted();
        }
      }
    } catch (err) {
      logger.warn('lease renewal failed; will retry', { worker: workerId, error: coerceError(err) });
    } finally {
      this.#busy = false;
    }
  }

  /**
   * Hands `batch` back. With `counted`, deadline stops (h.deadline) are counted in the row, and a
   * job out of deadline releases ends `failed` instead (jobs_release); a consumer that was stopped
   * counts none: the stop is not the job's doing.
   */
  async release(batch: Held[], reason: string, counted: boolean): Promise<void> {
    if (batch.length === 0) return;
    const { recorder, maxDeadlineReleases } = this.o;
    const outcome = await recorder.guard('release', () =>
      this.o.statements.releaseJobs(
        this.o.db,
        batch.map((h) => ({ id: h.job.id, leaseToken: h.job.leaseToken, deadline: counted && h.deadline })),
        reason,
        maxDeadlineReleases,
      ),
    );
    let released = 0;
    for (const h of batch) {
      this.held.delete(h.job.id);
      const status = outcome.get(h.job.id);
      const ms = h.startedAt ? Date.now() - h.startedAt : 0;
      if (status === 'queued') {
        released++;
        recorder.released(h.job, ms);
      } else if (status === 'failed') recorder.outOfReleases(h.job, ms, maxDeadlineReleases);
      else recorder.lostUnstarted();
    }
    this.o.logger.info('jobs released', {
      worker: this.o.workerId,
      reason,
      released,
      jobIds: batch.map((h) => h.job.id),
    });
  }
}
