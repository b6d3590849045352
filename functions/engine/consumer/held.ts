import { TaskEngineError } from '../errors.ts';
import type { ClaimedJob } from '../types.ts';

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

/** What an attempt settles with when its task ignored the abort (Held.onAbandon's argument). */
export const ABANDONED = Symbol('abandoned');

/** How long aborted tasks get to settle before they count as abandoned. */
export const ABORT_GRACE_MS = 500;

/**
 * One claimed job, from its claim until its outcome is recorded. Its AbortController is made
 * only when the task reads `ctx.signal`: creating one per job cost ~15 µs (a sixth of the
 * handler's per-job CPU in a 20,000-job profile), and most short tasks never look at it.
 * Likewise nothing waits for abandonment until an abort happens.
 */
export class Held {
  startedAt?: number;
  done?: Promise<void>;
  settled = false;
  /** Stopped by the invocation deadline (aborted there, or its timeout exceeds a whole invocation): a counted release. */
  deadline = false;
  abortReason: unknown;
  #controller: AbortController | undefined;
  /** Set by the executor: settles the attempt as abandoned (called with ABANDONED). */
  onAbandon: ((abandoned: typeof ABANDONED) => void) | undefined;
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
    setTimeout(() => this.onAbandon?.(ABANDONED), ABORT_GRACE_MS).unref?.();
  }
}
