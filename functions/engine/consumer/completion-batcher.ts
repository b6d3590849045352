import type { EngineLogger } from '../contracts.ts';
import { coerceError, NonRetryableError } from '../errors.ts';
import type { Db } from '../queryable.ts';
import type { ClaimOptions } from '../sql/claimJobs.ts';
import { isValueError } from '../sql/completeJobs.ts';
import type { ClaimedJob } from '../types.ts';
import type { Held } from './held.ts';
import type { LeaseKeeper } from './lease-keeper.ts';
import type { OutcomeRecorder, PendingCompletion } from './recorder.ts';
import type { Statements } from './statements.ts';

export interface CompletionBatcherOptions {
  db: Db;
  statements: Pick<Statements, 'completeJobs' | 'completeAndClaim' | 'claimJobs'>;
  keeper: Pick<LeaseKeeper, 'get' | 'drop'>;
  recorder: OutcomeRecorder;
  logger: EngineLogger;
  /** Flush on its own once this many completions wait... */
  maxSize: number;
  /** ...or once the oldest has waited longer than this (ms). */
  maxAgeMs: number;
  /** A job whose result the database refused: it fails alone ("result not storable"). */
  refused(h: Held, failure: Error, startedAt: number, finishedAt: number): Promise<void>;
}

/**
 * Finished jobs wait here for one batch completion. They ride with the next claim (one round
 * trip for both, completeAndClaim), or are flushed on their own when `maxSize` have piled up or
 * the oldest waited `maxAgeMs` (slow tasks keep the next claim away), and at the end.
 */
export class CompletionBatcher {
  #pending: PendingCompletion[] = [];

  constructor(private readonly o: CompletionBatcherOptions) {}

  get size(): number {
    return this.#pending.length;
  }

  add(c: PendingCompletion): void {
    this.#pending.push(c);
  }

  /** Full, or the oldest waited too long: flush without waiting for a claim. */
  due(now: number): boolean {
    const n = this.#pending.length;
    return n >= this.o.maxSize || (n > 0 && now - this.#pending[0]!.finishedAt > this.o.maxAgeMs);
  }

  async flush(): Promise<void> {
    await this.#send('complete', (batch) => this.o.statements.completeJobs(this.o.db, batch), done);
  }

  /** Claims, with the pending completions riding along (the fenced completion runs first). */
  async claim(options: ClaimOptions): Promise<ClaimedJob[]> {
    const { db, statements } = this.o;
    if (this.#pending.length > 0) {
      const out = await this.#send(
        'claim',
        (batch) => statements.completeAndClaim(db, batch, options),
        completed,
      );
      if (out) return out.claimed;
    }
    return this.o.recorder.guard('claim', () => statements.claimJobs(db, options));
  }

  /**
   * Sends every pending completion through `statement`; `ids` reads the completed ids from its
   * answer. Undefined when nothing was pending, or the database refused a value in the batch.
   */
  async #send<T>(
    op: 'claim' | 'complete',
    statement: (batch: PendingCompletion[]) => Promise<T>,
    ids: (out: T) => Set<string>,
  ): Promise<T | undefined> {
    if (this.#pending.length === 0) return undefined;
    const batch = this.#pending;
    this.#pending = [];
    let out: T;
    try {
      out = await this.o.recorder.guard(op, () => statement(batch));
    } catch (err) {
      if (!isValueError(err)) throw err;
      await this.#completeEach(batch, err);
      return undefined;
    }
    this.#settle(batch, ids(out));
    return out;
  }

  #settle(batch: PendingCompletion[], done: Set<string>): void {
    for (const c of batch) this.o.keeper.drop(c.id);
    this.o.recorder.completions(batch, done);
  }

  /**
   * The database refused a batch completion because of a value in it (storableResult catches
   * every case known, this is the net under it): completes the jobs one by one, and the job
   * whose result is refused fails alone, "result not storable".
   */
  async #completeEach(batch: PendingCompletion[], err: unknown): Promise<void> {
    const { db, statements, recorder } = this.o;
    this.o.logger.warn('the database refused a value in a batch completion; completing its jobs one by one', {
      worker: recorder.workerId,
      count: batch.length,
      error: coerceError(err).message,
    });
    for (const c of batch) {
      let ok: Set<string>;
      try {
        ok = await recorder.guard('complete', () => statements.completeJobs(db, [c]));
      } catch (one) {
        if (!isValueError(one)) throw one;
        const h = this.o.keeper.get(c.id);
        const failure = new NonRetryableError(`result not storable: ${coerceError(one).message}`);
        if (h) await this.o.refused(h, failure, c.startedAt, c.finishedAt);
        continue;
      }
      this.#settle([c], ok);
    }
  }
}

const done = (ids: Set<string>) => ids;
const completed = (out: { completed: Set<string> }) => out.completed;
