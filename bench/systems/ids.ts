import { TUNED_BATCH } from '../lib/options.ts';

/**
 * Every system a sample can be recorded for, by id, with the label the tables print. The
 * targets (report/targets.ts) and the report's groupings refer to these ids, never to labels.
 * A peer's label gets its installed version appended when recorded ("graphile-worker 0.18.0").
 */
export const SYSTEM_LABELS = {
  raw: 'raw SKIP LOCKED',
  'raw-tuned': `raw SKIP LOCKED, claim ${TUNED_BATCH}`,
  'engine-fn': 'engine functions',
  'engine-fn-nocount': 'engine functions, no counting',
  'engine-fn-advisory': 'engine functions, advisory',
  'engine-fn-cold': 'engine functions, unanalyzed',
  consumer: 'engine consumer handler (defaults: adaptive claims)',
  'consumer-fixed': 'engine consumer handler, fixed claim 50 (previous defaults)',
  'consumer-tuned': 'engine consumer handler, tuned',
  'consumer-nocount': 'engine consumer, no counting',
  'consumer-bigtable': 'consumer, 5M finished rows',
  'consumer-memory': 'engine consumer handler, in-memory database',
  'consumer-bundled': 'consumer process (bundled)',
  'api-consumer': 'engine api + consumer handlers',
  reaper: 'engine reaper handler',
  'consumer-pgbouncer': 'engine consumer handler, short-lived pools via PgBouncer',
  'graphile-pgbouncer': 'graphile-worker runOnce via PgBouncer',
  'pgboss-pgbouncer': 'pg-boss fetch/complete via PgBouncer',
  'release-consumer': 'previous release, consumer handler (defaults)',
  'consumer-nolimits': 'consumer, no queue limits anywhere',
  'consumer-limits': 'consumer, another queue limited',
  graphile: 'graphile-worker',
  pgboss: 'pg-boss',
  'enqueue-many': 'enqueueMany',
  'api-batch': 'API POST /jobs/batch',
  'enqueue-unnest': 'raw INSERT … unnest',
} as const;

export type SystemId = keyof typeof SYSTEM_LABELS;
