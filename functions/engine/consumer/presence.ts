import type { ConsumerSettings, EngineLogger } from '../contracts.ts';
import { coerceError } from '../errors.ts';
import type { Db } from '../queryable.ts';
import type { Statements } from './statements.ts';

/** An idle invocation stops staying (for a trickle or a due job) this close to its deadline. */
export const STAY_RESERVE_MS = 1000;

export interface PresenceOptions {
  db: Db;
  statements: Pick<Statements, 'touchPresence' | 'leavePresence' | 'nextDueAt'>;
  logger: EngineLogger;
  workerId: string;
  settings: ConsumerSettings;
}

/** What an idle invocation does next (see Presence.idle). */
export type IdleStep = 'wait' | 'claim' | 'exit';

/**
 * Wake on enqueue and staying: the invocation's presence row (the api invokes no other while it
 * is live), the trickle stay (work arrived after an empty claim), and the stay for a job due
 * soon (delayStayMs). Presence writes are best effort: an error costs at most an extra invoke or
 * a later start.
 */
export class Presence {
  /** The presence row is believed current (touched and not left). */
  present = false;
  /** Left before a last claim: that claim does not touch again. */
  leaving = false;
  /** Staying for a job due at this time (epoch ms); 0: none. */
  dueAt = 0;
  /** Times the invocation stayed for a due job. */
  stayedForDue = 0;
  #touchedAt = 0;
  /** A claim came back empty; then `#arrivals`: a later one found work (a trickle). */
  #claimedEmpty = false;
  #arrivals = false;
  readonly #liveMs: number;
  readonly stayPollMs: number;

  constructor(private readonly o: PresenceOptions) {
    this.#liveMs = o.settings.liveMs ?? 0;
    this.stayPollMs = o.settings.stayPollMs ?? o.settings.pollMs;
  }

  /** A claim's answer: `count` jobs. */
  claimed(count: number): void {
    if (count > 0) {
      // Work that arrived after an empty claim: a trickle, worth staying for.
      if (this.#claimedEmpty) this.#arrivals = true;
      // The last claim found work after all: live again.
      this.leaving = false;
      this.dueAt = 0;
    } else this.#claimedEmpty = true;
  }

  /** Before a claim: keeps the presence row live (touched every quarter of liveMs). */
  async touch(): Promise<void> {
    const liveMs = this.#liveMs;
    if (liveMs <= 0 || this.leaving || (this.present && Date.now() - this.#touchedAt < liveMs / 4)) return;
    try {
      await this.o.statements.touchPresence(this.o.db, this.o.workerId, this.o.settings.queues, liveMs);
      this.present = true;
      this.#touchedAt = Date.now();
    } catch (err) {
      this.#warn('could not record consumer presence', err);
    }
  }

  async leave(): Promise<void> {
    if (!this.present) return;
    this.present = false;
    try {
      await this.o.statements.leavePresence(this.o.db, this.o.workerId);
    } catch (err) {
      this.#warn('could not remove consumer presence; it expires', err);
    }
  }

  /**
   * Idle (the last claim found nothing, nothing runs or waits) for `idleFor` ms with `timeLeft`
   * ms left: wait and poll again, claim once more (after leaving: any job enqueued since then
   * made its api invoke), or exit. An invocation that saw work arrive while it polled stays for
   * stayMs after the last job (a trickle keeps it); otherwise it leaves after idleExitMs.
   * Staying for a due job ends a poll after its run_at. Neither stay runs into the deadline: an
   * idle invocation ends idle, so only a busy one ends at its deadline (and has a successor).
   */
  async idle(idleFor: number, timeLeft: number, retryAt: number): Promise<IdleStep> {
    const s = this.o.settings;
    // Left, and the last claim (after the presence row went) found nothing.
    if (this.leaving) return 'exit';
    const idleLimit = this.#arrivals ? Math.max(s.idleExitMs, s.stayMs ?? 0) : s.idleExitMs;
    const mustGo = idleFor >= s.idleExitMs && timeLeft <= Math.max(STAY_RESERVE_MS, 4 * this.stayPollMs);
    if (!mustGo && (idleFor < idleLimit || (this.dueAt !== 0 && Date.now() <= this.dueAt + this.stayPollMs)))
      return 'wait';
    this.dueAt = 0;
    const due = mustGo ? 0 : await this.nextDue(timeLeft, retryAt);
    if (due > 0) {
      this.dueAt = due;
      this.stayedForDue++;
      return 'wait';
    }
    if (this.#liveMs > 0 && this.present) {
      await this.leave();
      this.leaving = true;
      return 'claim';
    }
    return 'exit';
  }

  /** The earliest job due within delayStayMs that fits the time left (epoch ms), or 0. */
  async nextDue(timeLeft: number, retryAt: number): Promise<number> {
    const horizon = Math.min(this.o.settings.delayStayMs ?? 0, timeLeft - STAY_RESERVE_MS);
    if (horizon <= 0) return 0;
    const now = Date.now();
    let at = retryAt > now && retryAt - now <= horizon ? retryAt : Number.POSITIVE_INFINITY;
    try {
      const found = await this.o.statements.nextDueAt(this.o.db, this.o.settings.queues, horizon);
      if (found !== undefined && found < at) at = found;
    } catch (err) {
      this.#warn('could not read the next due job; exiting', err);
    }
    return Number.isFinite(at) ? at : 0;
  }

  #warn(message: string, err: unknown): void {
    this.o.logger.warn(message, { worker: this.o.workerId, error: coerceError(err).message });
  }
}
