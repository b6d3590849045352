import { ValidationError } from '../errors.ts';
import type { Queryable } from '../queryable.ts';
import { isName, NAMES } from '../schema.ts';
import type { AuditBy } from './audit.ts';

/**
 * What happens to a queue's completed jobs: `keep` (the default) keeps them for the reaper's
 * retention (RETENTION_DAYS); `delete` deletes each one as it completes, for ephemeral
 * high-volume queues. Failed jobs are kept either way, and a keyed job's idempotency key stays
 * answerable for the retention (a replay answers with the same job id, status completed).
 */
export type QueueRetention = 'keep' | 'delete';
export const QUEUE_RETENTIONS: readonly QueueRetention[] = ['keep', 'delete'];

export interface QueueRetentionSetting {
  name: string;
  retention: QueueRetention;
}

/** Checks a retention change at the edge; throws ValidationError naming what is wrong. */
export function validateRetention(name: string, retention: unknown): asserts retention is QueueRetention {
  if (!isName('queue', name)) throw new ValidationError(`queue name must be ${NAMES.queue.rule}`);
  if (!QUEUE_RETENTIONS.includes(retention as QueueRetention)) {
    throw new ValidationError(
      `retention must be "keep" or "delete", got ${JSON.stringify(retention) ?? 'nothing'}`,
      { details: { path: 'retention' } },
    );
  }
}

/**
 * Sets a queue's retention (validated first: nothing is stored on bad input), its
 * 'set-retention' audit row ({retention, previous}) written by the same statement
 * (queue_set_retention_audited, functions/retention.sql). Completions from the next statement on
 * follow it; jobs finished before stay where they are.
 */
export async function setQueueRetention(
  db: Queryable,
  name: string,
  retention: QueueRetention,
  audit: AuditBy,
): Promise<QueueRetentionSetting> {
  validateRetention(name, retention);
  const { rows } = await db.query<QueueRetentionSetting>(
    'SELECT name, retention FROM queue_set_retention_audited($1, $2, $3, $4)',
    [name, retention, audit.actor, audit.reason],
  );
  return rows[0]!;
}

/** The queues whose retention is not the default (`keep`), by name. */
export async function listQueueRetention(db: Queryable): Promise<QueueRetentionSetting[]> {
  const { rows } = await db.query<QueueRetentionSetting>(
    `SELECT name, retention FROM queues WHERE retention <> 'keep' ORDER BY name`,
  );
  return rows;
}
