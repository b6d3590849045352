import type { Queryable } from '../queryable.ts';
import { type QueueLimitChange, validateLimitChange } from '../schema.ts';
import type { AuditBy } from './audit.ts';

export type { QueueLimitChange };

export interface QueueLimits {
  name: string;
  /** Never more than this many running (claimed) jobs of the queue across the fleet; null: no limit. */
  maxRunning: number | null;
  /** Claims per second (a token bucket); null: no rate limit. */
  ratePerSecond: number | null;
  /** The bucket's size: how many claims may come at once after a quiet spell. */
  rateBurst: number | null;
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
  audit?: AuditBy,
): Promise<QueueLimits> {
  validateLimitChange(name, change);
  const params = [
    name,
    change.maxRunning !== undefined,
    change.maxRunning ?? null,
    change.rate !== undefined,
    change.rate ?? null,
    change.burst ?? null,
  ];
  // With `audit`, queue_set_limits_audited writes the change's job_audit row in the same statement.
  const { rows } = audit
    ? await db.query<LimitRow>(
        `SELECT name, max_running, rate_per_second, rate_burst
           FROM queue_set_limits_audited($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [...params, JSON.stringify(change), audit.actor, audit.reason],
      )
    : await db.query<LimitRow>(
        'SELECT name, max_running, rate_per_second, rate_burst FROM queue_set_limits($1, $2, $3, $4, $5, $6)',
        params,
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
