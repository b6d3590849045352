/**
 * Adaptive claims: how many jobs one claim asks for, from the free slots, the observed task
 * duration and the time left. Short tasks get large claims (fewer statements per job, which is
 * what the database's CPU per job depends on); long tasks get one job per free slot, so no job
 * waits under a lease for a slot another consumer could have given it.
 */

/**
 * The claim before any task has finished in this invocation: the fixed claim the engine shipped
 * with (BATCH_SIZE 50) or the free slots if more, never more than the cap. A first burst of
 * long tasks is not over-claimed by a raised cap.
 */
export const INITIAL_CLAIM = 50;

/** How much slot time, by default, one claim aims to bring (ms). */
export const DEFAULT_CLAIM_TARGET_MS = 1000;

export interface ClaimSizeInput {
  /** Slots not running a task (concurrency less running). */
  freeSlots: number;
  /** The cap: BATCH_SIZE. */
  batchSize: number;
  /** Typical slot time per job in this invocation (ms), undefined before the first one finished. */
  observedMs: number | undefined;
  /** Time left to run tasks in (ms). */
  timeLeftMs: number;
  /** Aim: about this much work per slot (ms). */
  targetMs: number;
}

/**
 * The claim limit: enough jobs for about `targetMs` of work in every free slot, at most
 * `batchSize`, never more than the free slots can finish in the time left, and at least one
 * (0 only when no slot is free). Before any observation: INITIAL_CLAIM (or the free slots, if
 * more), within the cap.
 */
export function claimSize(input: ClaimSizeInput): number {
  const { freeSlots, batchSize, observedMs, timeLeftMs, targetMs } = input;
  const free = Math.floor(freeSlots);
  if (free <= 0 || batchSize < 1) return 0;
  if (observedMs === undefined || !Number.isFinite(observedMs))
    return Math.min(batchSize, Math.max(free, INITIAL_CLAIM));
  // A task that took no measurable time: any number of them fits the target and the time left.
  const per = Math.max(observedMs, 0);
  const perSlotForTarget = per === 0 ? Number.POSITIVE_INFINITY : Math.floor(targetMs / per);
  const perSlotInTime = per === 0 ? Number.POSITIVE_INFINITY : Math.floor(Math.max(0, timeLeftMs) / per);
  const perSlot = Math.min(Math.max(1, perSlotForTarget), perSlotInTime);
  const n = free * perSlot;
  return Math.max(1, Math.min(batchSize, Number.isFinite(n) ? n : batchSize));
}

/** Weight of the newest duration in the moving average. */
const ALPHA = 0.2;

/** An exponentially weighted moving average of the slot time per job (ms). */
export class DurationAverage {
  #value: number | undefined;
  get value(): number | undefined {
    return this.#value;
  }
  observe(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.#value = this.#value === undefined ? ms : this.#value + ALPHA * (ms - this.#value);
  }
}
