import type {
  ConsumerObserver,
  ConsumerSettings,
  ConsumerSummary,
  EngineLogger,
  InvocationContext,
  TaskLookup,
} from '../contracts.ts';
import { coerceError } from '../errors.ts';
import type { Db } from '../queryable.ts';
import type { ClaimOptions } from '../sql/claimJobs.ts';
import { DEFAULT_MAX_DEADLINE_RELEASES } from '../sql/releaseJobs.ts';
import { claimSize, DEFAULT_CLAIM_TARGET_MS, DurationAverage } from './claim-size.ts';
import { CompletionBatcher } from './completion-batcher.ts';
import { JobExecutor } from './executor.ts';
import { ABORT_GRACE_MS, DeadlineError, type Held } from './held.ts';
import { LeaseKeeper } from './lease-keeper.ts';
import { Presence } from './presence.ts';
import { OutcomeRecorder } from './recorder.ts';
import { SQL_STATEMENTS, type Statements } from './statements.ts';

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

export interface ConsumerDeps {
  db: Db;
  tasks: TaskLookup;
  logger: EngineLogger;
  settings: ConsumerSettings;
  observer?: ConsumerObserver;
  /** The statements run (default: the engine's SQL); unit tests pass fakes. */
  statements?: Statements;
}

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
export async function runConsumer(deps: ConsumerDeps, ctx: InvocationContext): Promise<ConsumerSummary> {
  const started = Date.now();
  const run = new ConsumerRun(deps, ctx);
  run.keeper.start();
  await run.loop();
  await run.windDown();
  const summary = run.recorder.summary;
  summary.stayedForDue = run.presence.stayedForDue;
  summary.durationMs = Date.now() - started;
  return summary;
}

/** The state of one invocation, and the steps of its loop. */
class ConsumerRun {
  readonly recorder: OutcomeRecorder;
  readonly keeper: LeaseKeeper;
  readonly batcher: CompletionBatcher;
  readonly executor: JobExecutor;
  readonly presence: Presence;
  /** Claimed, waiting for a slot. */
  readonly waiting: Held[] = [];
  readonly running = new Set<Held>();
  /** Claimed jobs whose task's timeoutSeconds did not fit the time left: released at the end. */
  readonly deferred: Held[] = [];
  /** Set when a job that fits a whole invocation no longer fits this one: claim nothing more. */
  outOfTime = false;
  /** When the paused queues were last known: the claim itself skips paused queues. */
  pauseCheckedAt = 0;
  lastWorkAt = Date.now();
  readonly margin: number;
  /** What this invocation had to run tasks in: a timeout longer than this never fits one like it. */
  readonly budgetMs: number;
  /** Slot time per finished job in this invocation: sizes the adaptive claims. */
  readonly durations = new DurationAverage();
  readonly #s: ConsumerSettings;
  readonly #claimOptions: ClaimOptions;
  readonly #statements: Statements;
  #wake: () => void = () => {};

  constructor(
    private readonly deps: ConsumerDeps,
    private readonly ctx: InvocationContext,
  ) {
    const s = deps.settings;
    const { db, logger } = deps;
    const statements = deps.statements ?? SQL_STATEMENTS;
    const workerId = ctx.workerId;
    this.#s = s;
    this.#statements = statements;
    this.margin = deadlineMargin(ctx.remainingMs());
    this.budgetMs = ctx.remainingMs() - this.margin;
    this.#claimOptions = {
      workerId,
      limit: s.batchSize,
      leaseSeconds: s.leaseSeconds,
      queues: s.queues,
      advisoryLocks: s.advisoryLocks,
    };
    const recorder = new OutcomeRecorder(workerId, logger, deps.observer);
    this.recorder = recorder;
    const keeper = new LeaseKeeper({
      db,
      statements,
      recorder,
      logger,
      workerId,
      leaseSeconds: s.leaseSeconds,
      maxDeadlineReleases: s.maxDeadlineReleases ?? DEFAULT_MAX_DEADLINE_RELEASES,
      withdraw: (h) => this.#withdraw(h),
    });
    this.keeper = keeper;
    this.batcher = new CompletionBatcher({
      db,
      statements,
      keeper,
      recorder,
      logger,
      maxSize: s.batchSize,
      maxAgeMs: Math.min(1000, keeper.heartbeatMs),
      refused: (h, failure, startedAt, finishedAt) =>
        this.executor.recordFailure(h, failure, startedAt, finishedAt),
    });
    this.executor = new JobExecutor({
      db,
      statements,
      keeper,
      batcher: this.batcher,
      recorder,
      logger,
      backoffBaseSeconds: s.backoffBaseSeconds,
      maxBackoffSeconds: s.maxBackoffSeconds,
      settled: (h) => {
        h.settled = true;
        if (h.startedAt !== undefined) this.durations.observe(Date.now() - h.startedAt);
        this.running.delete(h);
        this.#wake();
      },
    });
    this.presence = new Presence({ db, statements, logger, workerId, settings: s });
  }

  /** Read live: the local engine shortens the remaining time on Ctrl-C. */
  timeLeft(): number {
    return this.ctx.remainingMs() - this.margin;
  }

  async loop(): Promise<void> {
    const s = this.#s;
    const summary = this.recorder.summary;
    try {
      for (;;) {
        const stop = this.#stopReason();
        if (stop) {
          summary.exitReason = stop;
          break;
        }
        let claimedNothing = false;
        if (this.waiting.length === 0 && this.running.size < s.concurrency && !this.outOfTime)
          claimedNothing = await this.#claim();
        if (this.batcher.due(Date.now())) await this.batcher.flush();
        if (this.#pauseCheckDue()) await this.#releasePaused();
        this.#startWaiting();
        if (claimedNothing && this.running.size === 0 && this.waiting.length === 0) {
          await this.batcher.flush();
          const idleFor = Date.now() - this.lastWorkAt;
          const step = await this.presence.idle(idleFor, this.timeLeft(), this.recorder.retryAt);
          if (step === 'exit') {
            summary.exitReason = 'idle';
            break;
          }
          if (step === 'claim') continue;
        }
        if (this.running.size >= s.concurrency || claimedNothing || this.outOfTime)
          await this.#pause(claimedNothing);
      }
    } catch (err) {
      summary.exitReason = 'error';
      this.deps.logger.error('consumer loop failed; held jobs will be released or recovered by the reaper', {
        worker: this.ctx.workerId,
        error: coerceError(err),
      });
    }
  }

  #stopReason(): 'stopped' | 'deadline' | undefined {
    if (this.ctx.stopSignal?.aborted) return 'stopped';
    if (this.timeLeft() <= 0) return 'deadline';
    if (this.outOfTime && this.waiting.length === 0 && this.running.size === 0) return 'deadline';
    return undefined;
  }

  /** BATCH_SIZE, or with adaptive claims (the default) the size claimSize gives for now. */
  claimLimit(): number {
    const s = this.#s;
    if (s.adaptiveClaims === false) return s.batchSize;
    return claimSize({
      freeSlots: s.concurrency - this.running.size,
      batchSize: s.batchSize,
      observedMs: this.durations.value,
      timeLeftMs: this.timeLeft(),
      targetMs: s.claimTargetMs ?? DEFAULT_CLAIM_TARGET_MS,
    });
  }

  /** One claim (pending completions ride along); true when it found nothing. */
  async #claim(): Promise<boolean> {
    await this.presence.touch();
    const limit = this.claimLimit();
    const options =
      limit === this.#claimOptions.limit ? this.#claimOptions : { ...this.#claimOptions, limit };
    const t0 = performance.now();
    const claimed = await this.batcher.claim(options);
    const now = Date.now();
    this.pauseCheckedAt = now;
    this.recorder.claimed(performance.now() - t0, claimed.length, limit);
    for (const job of claimed) this.waiting.push(this.keeper.hold(job, now));
    this.presence.claimed(claimed.length);
    if (claimed.length === 0) return true;
    this.lastWorkAt = now;
    return false;
  }

  /**
   * Starts waiting jobs while slots are free. A task that cannot finish in the time left is not
   * started: it is held (its lease renewed) and released at the end, so that a fresh invocation
   * can take it with its full time. If it does not fit even a whole invocation like this one the
   * release is a counted deadline stop (a job longer than any invocation ends `failed`);
   * otherwise this invocation is near its end, and it claims nothing more (which would only be
   * held and handed back too).
   */
  #startWaiting(): void {
    const { waiting, running } = this;
    const concurrency = this.#s.concurrency;
    while (waiting.length > 0 && running.size < concurrency && this.timeLeft() > 0) {
      const h = waiting.shift()!;
      const task = this.deps.tasks.get(h.job.type);
      if (task?.timeoutSeconds !== undefined && task.timeoutSeconds * 1000 > this.timeLeft()) {
        if (task.timeoutSeconds * 1000 > this.budgetMs) h.deadline = true;
        else this.outOfTime = true;
        this.deferred.push(h);
        continue;
      }
      running.add(h);
      h.done = this.executor.execute(h, task);
    }
  }

  /** Waiting jobs are about to start and the paused queues were last read pauseCheckMs ago or more. */
  #pauseCheckDue(): boolean {
    return (
      this.waiting.length > 0 &&
      this.running.size < this.#s.concurrency &&
      Date.now() - this.pauseCheckedAt >= (this.#s.pauseCheckMs ?? 250) &&
      this.timeLeft() > 0
    );
  }

  /**
   * Pause means pause: claimed jobs still waiting for a slot whose queue was paused since are
   * released (no attempt consumed) instead of started. One small read of `queues`, at most every
   * pauseCheckMs and only when a job is about to start that was claimed longer ago than that.
   */
  async #releasePaused(): Promise<void> {
    this.pauseCheckedAt = Date.now();
    const { waiting, recorder } = this;
    const statements = this.#statements;
    let paused: Set<string>;
    try {
      const names = [...new Set(waiting.map((h) => h.job.queue))];
      paused = await recorder.guard('claim', () => statements.pausedQueues(this.deps.db, names));
    } catch (err) {
      this.deps.logger.warn('could not read the paused queues; starting the claimed jobs', {
        worker: this.ctx.workerId,
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
    await this.keeper.release(out, 'queue paused', recorder.summary.exitReason !== 'stopped');
  }

  /** A job whose lease was lost, taken out of the waiting ones; true if it was waiting. */
  #withdraw(h: Held): boolean {
    const idx = this.waiting.indexOf(h);
    if (idx < 0) return false;
    this.waiting.splice(idx, 1);
    return true;
  }

  /** Waits for a slot to free, the next poll, a due job's run_at, or the stop. */
  async #pause(claimedNothing: boolean): Promise<void> {
    const s = this.#s;
    const { presence, ctx } = this;
    const idlePoll = Date.now() - this.lastWorkAt > s.idleExitMs ? presence.stayPollMs : s.pollMs;
    // Staying for a due job: wake at its run_at, not a poll later.
    const untilDue = presence.dueAt > 0 ? Math.max(1, presence.dueAt - Date.now()) : Number.POSITIVE_INFINITY;
    const waitMs = Math.min(
      claimedNothing ? Math.min(idlePoll, untilDue) : 1000,
      Math.max(1, this.timeLeft()),
    );
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        ctx.stopSignal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      this.#wake = done;
      ctx.stopSignal?.addEventListener('abort', done, { once: true });
    });
    this.#wake = () => {};
  }

  /** Unstarted jobs go back; running ones finish until the deadline, then are aborted. */
  async windDown(): Promise<void> {
    const { keeper, running, recorder } = this;
    // No longer claiming: the api wakes another invocation for new work.
    await this.presence.leave();
    for (const h of this.waiting.splice(0)) keeper.toRelease.push(h);
    for (const h of this.deferred.splice(0)) keeper.toRelease.push(h);
    if (running.size > 0) {
      // Running tasks may finish until the deadline; then they are aborted and settle (or are
      // abandoned) within the grace period.
      const all = Promise.all([...running].map((h) => h.done));
      await Promise.race([all, sleep(Math.max(0, this.timeLeft()))]);
      for (const h of running) h.abort(new DeadlineError());
      await this.#beforeEnd('recording the last outcomes', () => all);
    }
    keeper.stop();
    await this.#beforeEnd('final completion flush', () => this.batcher.flush());
    const stopped = recorder.summary.exitReason === 'stopped';
    await this.#beforeEnd('release', () =>
      keeper.release(
        keeper.toRelease.splice(0),
        stopped ? 'consumer stopped' : 'invocation deadline',
        !stopped,
      ),
    );
  }

  /**
   * Waits for `work`, but never past the invocation's end less FINAL_RESERVE_MS: on a silent
   * database a statement may otherwise wait out its connect and query timeouts and the handler
   * would overrun its deadline. Work given up on is left to the reaper (leases expire).
   */
  async #beforeEnd(what: string, work: () => Promise<unknown>): Promise<void> {
    const { logger } = this.deps;
    const worker = this.ctx.workerId;
    const left = this.ctx.remainingMs() - FINAL_RESERVE_MS;
    const settled = work().then(
      () => true,
      (err) => {
        logger.error(`${what} failed; the reaper will requeue these jobs after their lease`, {
          worker,
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
        { worker },
      );
  }
}
