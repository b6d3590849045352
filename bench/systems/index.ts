/** The systems the drain scenarios run, by id (systems/ids.ts has every id and its label). */
import { consumer, consumerFixed, consumerNocount, consumerTuned } from './consumer.ts';
import { engineFn, engineFnAdvisory, engineFnCold, engineFnNocount } from './engine.ts';
import { consumerLimits, consumerNolimits } from './limits.ts';
import { graphile, pgboss } from './peers.ts';
import { enqueueUnnest, raw, rawTuned } from './raw.ts';
import { releaseConsumer } from './release.ts';
import type { System } from './types.ts';

export const SYSTEMS = {
  raw,
  'raw-tuned': rawTuned,
  'engine-fn': engineFn,
  'engine-fn-nocount': engineFnNocount,
  'engine-fn-advisory': engineFnAdvisory,
  'engine-fn-cold': engineFnCold,
  consumer,
  'consumer-fixed': consumerFixed,
  'consumer-tuned': consumerTuned,
  'consumer-nocount': consumerNocount,
  'release-consumer': releaseConsumer,
  'consumer-nolimits': consumerNolimits,
  'consumer-limits': consumerLimits,
  graphile,
  pgboss,
  'enqueue-unnest': enqueueUnnest,
} satisfies Record<string, System>;

export type RunnableSystemId = keyof typeof SYSTEMS;
export { peerConfigs } from './peers.ts';
export type { System, SystemRun } from './types.ts';
