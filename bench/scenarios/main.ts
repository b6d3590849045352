import { JOBS, QUICK, WORKERS } from '../lib/options.ts';
import type { RunnableSystemId } from '../systems/index.ts';
import { interleaved } from './interleaved.ts';
import type { Scenario } from './types.ts';

/** The quick run's systems: the shipped defaults, the tuning, the peers and the enqueue reference. */
const QUICK_SYSTEMS: RunnableSystemId[] = [
  'raw',
  'raw-tuned',
  'engine-fn',
  'engine-fn-nocount',
  'consumer',
  'consumer-fixed',
  'consumer-tuned',
  'graphile',
  'pgboss',
  'enqueue-unnest',
];

/** The full run adds the advisory and never-analyzed engine paths and the consumer without counting. */
const FULL_SYSTEMS: RunnableSystemId[] = [
  'raw',
  'raw-tuned',
  'engine-fn',
  'engine-fn-nocount',
  'engine-fn-advisory',
  'engine-fn-cold',
  'consumer',
  'consumer-fixed',
  'consumer-tuned',
  'consumer-nocount',
  'graphile',
  'pgboss',
  'enqueue-unnest',
];

/** (a) Drain of JOBS no-op jobs with WORKERS workers by every system; also the enqueue samples. */
export const main: Scenario = {
  id: 'main',
  quick: true,
  run: () => interleaved('main', QUICK ? QUICK_SYSTEMS : FULL_SYSTEMS, JOBS, WORKERS),
};
