/**
 * The consumer's shared contracts: what a consumer invocation is given (settings, tasks, a
 * logger, an observer) and what it hands back (a summary), and the outcome and database
 * operation names its observer reports. The platform's metrics take these names from here.
 */

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

/** How an attempt ended: `lost` = lease lost to another worker, `abandoned` = left running at the deadline. */
export const RUN_OUTCOMES = ['completed', 'failed', 'retried', 'released', 'lost', 'abandoned'] as const;
export type RunOutcome = (typeof RUN_OUTCOMES)[number];

/** The database operations the consumer reports errors of . */
export const CONSUMER_DB_OPERATIONS = ['claim', 'complete', 'fail', 'renew', 'release'] as const;
export type ConsumerDbOperation = (typeof CONSUMER_DB_OPERATIONS)[number];
/** Every database operation the engine's metrics count errors of (the consumer's, enqueue, reap, read). */
export const DB_OPERATIONS = [
  'claim',
  'enqueue',
  'complete',
  'fail',
  'renew',
  'release',
  'reap',
  'read',
] as const satisfies readonly string[];
export type DbOperation = (typeof DB_OPERATIONS)[number];

/** Hooks for per-container metrics; all optional. */
export interface ConsumerObserver {
  claimed?(latencyMs: number, count: number): void;
  ran?(type: string, outcome: RunOutcome, durationMs: number): void;
  dbError?(operation: ConsumerDbOperation, err: unknown): void;
}

export interface ConsumerSettings {
  /** The claim size, or with adaptive claims (the default) its cap. */
  batchSize: number;
  /**
   * Adaptive claims (default on): each claim brings about claimTargetMs of work per free slot,
   * from the task durations seen in this invocation, within batchSize and the time left (see
   * consumer/claim-size.ts). false: every claim asks for batchSize.
   */
  adaptiveClaims?: boolean;
  /** Adaptive claims aim at this much work per free slot (ms). Default 1000. */
  claimTargetMs?: number;
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
