/**
 * The scenarios in the order a run takes them; each id is what --only takes and what
 * docs/BENCHMARKS.md names (issue 7's letters in the comments of each module).
 */
import { bigtableScenario } from './bigtable.ts';
import { claimScenario } from './claim.ts';
import { consumerJsScenario } from './consumer-js.ts';
import { deployedTrickleScenario } from './deployed-trickle.ts';
import { limitsScenario } from './limits.ts';
import { main } from './main.ts';
import { pgbouncerScenario } from './pgbouncer.ts';
import { previousReleaseScenario } from './previous-release.ts';
import { reaperScenario } from './reaper.ts';
import { rssScenario } from './rss.ts';
import { scale } from './scale.ts';
import { trickleScenario } from './trickle.ts';
import type { Scenario } from './types.ts';

export const SCENARIOS: readonly Scenario[] = [
  main,
  consumerJsScenario,
  scale,
  trickleScenario,
  deployedTrickleScenario,
  claimScenario,
  reaperScenario,
  bigtableScenario,
  rssScenario,
  pgbouncerScenario,
  previousReleaseScenario,
  limitsScenario,
];
export type { Scenario } from './types.ts';
