import { ValidationError } from '../errors.ts';
import type { Queryable } from '../queryable.ts';

export interface QueueLimits {
  name: string;
  /** Never more than this many running (claimed) jobs of the queue across the fleet; null: no limit. */
  maxRunning: number | null;
  /** Claims per second (a token bucket); null: no rate limit. */
  ratePerSecond: number | null;
  /** The bucket's size: how many claims may come at once after a quiet spell. */
  rateBurst: number | null;
}

/** What to change: an absent field is left as it is, `null` removes that limit. */
export interface QueueLimitChange {
  maxRunning?: number | null;
  rate?: number | null;
  burst?: number | null;
}

const QUEUE_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Checks a change at the edge; throws ValidationError with a message naming the field. */
export function validateLimitChange(name: string, change: QueueLimitChange): void {
  if (!QUEUE_NAME.test(name)) throw new ValidationError(`queue name must be 1-128 of [A-Za-z0-9_.:-]`);
  const { maxRunning, rate, burst } = change;
  if (maxRunning === undefined && rate === undefined) {
    throw new ValidationError('give maxRunning and/or rate (null removes a limit)');
  }
  if (maxRunning !== undefined && maxRunning !== null) {
    if (!Number.isInteger(maxRunning) || maxRunning < 1 || maxRunning > 1_000_000) {
      throw new ValidationError(
        `maxRunning must be an integer from 1 to 1000000 (or null to remove it), got ${maxRunning}`,
      );
    }
  }
  if (rate !== undefined && rate !== null) {
    if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0 || rate > 1_000_000) {
      throw new ValidationError(
        `rate must be a number of jobs per second above 0 and at most 1000000 (or null), got ${rate}`,
      );
    }
  }
  if (burst !== undefined && burst !== null) {
    if (rate === undefined || rate === null) throw new ValidationError('burst needs a rate');
    if (!Number.isInteger(burst) || burst < 1 || burst > 1_000_000) {
      throw new ValidationError(`burst must be an integer from 1 to 1000000, got ${burst}`);
    }
  }
}

interface LimitRow {
  name: string;
  max_running: number | null;
  rate_per_second: number | null;
  rate_burst: number | null;
}

const toLimits = (r: LimitRow): QueueLimits => ({
  name: r.name,
  maxRunning: r.max_running,
  ratePerSecond: r.rate_per_second === null ? null : Number(r.rate_per_second),
  rateBurst: r.rate_burst,
});

/**
 * Sets or removes a queue's limits (queue_set_limits of migration 0011; the burst defaults to
 * one second's worth of the rate). Validated first: nothing is stored on bad input.
 */
export async function setQueueLimits(
  db: Queryable,
  name: string,
  change: QueueLimitChange,
): Promise<QueueLimits> {
  validateLimitChange(name, change);
  const { rows } = await db.query<LimitRow>(
    'SELECT name, max_running, rate_per_second, rate_burst FROM queue_set_limits($1, $2, $3, $4, $5, $6)',
    [
      name,
      change.maxRunning !== undefined,
      change.maxRunning ?? null,
      change.rate !== undefined,
      change.rate ?? null,
      change.burst ?? null,
    ],
  );
  return toLimits(rows[0]!);
}

/** Every queue that has a limit, by name. */
export async function listQueueLimits(db: Queryable): Promise<QueueLimits[]> {
  const { rows } = await db.query<LimitRow>(
    `SELECT name, max_running, rate_per_second, rate_burst FROM queues
      WHERE max_running IS NOT NULL OR rate_per_second IS NOT NULL ORDER BY name`,
  );
  return rows.map(toLimits);
}
