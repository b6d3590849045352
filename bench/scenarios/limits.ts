import { JOBS, WORKERS } from '../lib/options.ts';
import { LIMITED_JOBS, LIMITS } from '../systems/limits.ts';
import { interleaved } from './interleaved.ts';
import type { Scenario } from './types.ts';

/**
 * (issue 18) An unlimited queue drains at the same rate while limits exist elsewhere: JOBS jobs
 * of `default`, (a) no queue limits at all, (b) another queue limited and holding jobs; same
 * harness, interleaved rounds; the report's ratio b ÷ a of drain and server CPU per job.
 */
export const limitsScenario: Scenario = {
  id: 'limits',
  quick: false,
  intro: `limits: ${JOBS.toLocaleString('en-US')} jobs of an unlimited queue, ${WORKERS} consumers, (a) no limits, (b) another queue with ${JSON.stringify(LIMITS)} and ${LIMITED_JOBS} jobs`,
  run: () => interleaved('limits', ['consumer-nolimits', 'consumer-limits'], JOBS, WORKERS),
};
