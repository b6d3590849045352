/**
 * The targets a run is judged on, as tables keyed by scenario and system ids (systems/ids.ts):
 * ratios of two systems' rates per round, and absolute figures. docs/BENCHMARKS.md quotes
 * their verdicts; a target whose samples a run did not take is left out of its report.
 */
import { BATCH, TUNED_BATCH } from '../lib/options.ts';
import type { SampleScenario } from '../lib/results.ts';
import type { SystemId } from '../systems/ids.ts';

/** 'min': the median must be ≥ target; 'max': ≤ target. */
export type Kind = 'min' | 'max';

export interface RatioTarget {
  what: string;
  scenario: SampleScenario;
  /** Per round: rate of `num` ÷ rate of `den`, both in `scenario`. */
  num: SystemId;
  den: SystemId;
  /** Another figure than the rate: a key of the samples' extra (dbCpuUsPerJob, walBytesPerJob). */
  figure?: string;
  target: number;
  kind: Kind;
}

const consumerVsPeers = (label: string, num: SystemId, raw: SystemId, rawLabel: string): RatioTarget[] => [
  {
    what: `${label} ÷ graphile-worker (4 workers)`,
    scenario: 'main',
    num,
    den: 'graphile',
    target: 1.5,
    kind: 'min',
  },
  { what: `${label} ÷ pg-boss (4 workers)`, scenario: 'main', num, den: 'pgboss', target: 3, kind: 'min' },
  {
    what: `${label} ÷ ${rawLabel} (same claim size)`,
    scenario: 'main',
    num,
    den: raw,
    target: 0.8,
    kind: 'min',
  },
];

export const RATIO_TARGETS: readonly RatioTarget[] = [
  // The consumer handler against the peers and the raw loop: shipped defaults, then the tuning.
  ...consumerVsPeers('consumer drain', 'consumer', 'raw', 'raw SKIP LOCKED'),
  ...consumerVsPeers(
    `tuned consumer (claim ${TUNED_BATCH})`,
    'consumer-tuned',
    'raw-tuned',
    `raw SKIP LOCKED, claim ${TUNED_BATCH}`,
  ),
  {
    what: 'engine-functions drain ÷ raw loop (issue 2)',
    scenario: 'main',
    num: 'engine-fn',
    den: 'raw',
    target: 0.75,
    kind: 'min',
  },
  {
    what: 'consumer drain ÷ engine-functions drain (issue 3)',
    scenario: 'main',
    num: 'consumer',
    den: 'engine-fn',
    target: 0.85,
    kind: 'min',
  },
  {
    what: 'engine functions: counting on ÷ off (issue 4)',
    scenario: 'main',
    num: 'engine-fn',
    den: 'engine-fn-nocount',
    target: 0.9,
    kind: 'min',
  },
  {
    what: 'enqueueMany ÷ raw INSERT … unnest',
    scenario: 'enqueue',
    num: 'enqueue-many',
    den: 'enqueue-unnest',
    target: 0.75,
    kind: 'min',
  },
  {
    what: 'advisory path ÷ default path (engine functions)',
    scenario: 'main',
    num: 'engine-fn-advisory',
    den: 'engine-fn',
    target: 0.9,
    kind: 'min',
  },
  {
    what: 'consumer: counting on ÷ off (issue 4)',
    scenario: 'main',
    num: 'consumer',
    den: 'consumer-nocount',
    target: 0.9,
    kind: 'min',
  },
  {
    what: 'drain with 5M finished rows ÷ empty table',
    scenario: 'bigtable',
    num: 'consumer-bigtable',
    den: 'consumer',
    target: 0.9,
    kind: 'min',
  },
  // Today's code beside the previous release (previous-release scenario, both at shipped defaults).
  {
    what: 'server CPU/job: ours ÷ previous release (issue 21)',
    scenario: 'previous-release',
    num: 'consumer',
    den: 'release-consumer',
    figure: 'dbCpuUsPerJob',
    target: 0.6,
    kind: 'max',
  },
  {
    what: 'WAL/job: ours ÷ previous release (issue 21)',
    scenario: 'previous-release',
    num: 'consumer',
    den: 'release-consumer',
    figure: 'walBytesPerJob',
    target: 0.85,
    kind: 'max',
  },
  {
    what: 'consumer drain: ours ÷ previous release (issue 19: no regression)',
    scenario: 'previous-release',
    num: 'consumer',
    den: 'release-consumer',
    target: 0.9,
    kind: 'min',
  },
  // An unlimited queue while another queue has limits ÷ with no limits at all (limits scenario).
  {
    what: 'unlimited queue drain: another queue limited ÷ no limits (issue 18)',
    scenario: 'limits',
    num: 'consumer-limits',
    den: 'consumer-nolimits',
    target: 0.9,
    kind: 'min',
  },
  {
    what: 'server CPU/job of the unlimited queue: another queue limited ÷ no limits (issue 18)',
    scenario: 'limits',
    num: 'consumer-limits',
    den: 'consumer-nolimits',
    figure: 'dbCpuUsPerJob',
    target: 1.1,
    kind: 'max',
  },
];

export interface AbsoluteTarget {
  what: string;
  scenario: SampleScenario;
  /** Only this system's samples (else every sample of the scenario that has the figure). */
  system?: SystemId;
  /** The sample's rate, its seconds, or a key of its extra. */
  figure: string;
  unit: string;
  digits: number;
  /** 'ref': printed as a reference figure, not judged. */
  kind: Kind | 'ref';
  target?: number;
}

export const ABSOLUTE_TARGETS: readonly AbsoluteTarget[] = [
  {
    what: 'enqueueMany',
    scenario: 'enqueue',
    system: 'enqueue-many',
    figure: 'rate',
    ...atLeast(50_000, 'jobs/s'),
  },
  {
    what: 'API batch route enqueue',
    scenario: 'enqueue',
    system: 'api-batch',
    figure: 'rate',
    ...atLeast(50_000, 'jobs/s'),
  },
  { what: 'trickle latency p50', scenario: 'trickle', figure: 'p50Ms', ...atMost(25, 'ms', 1) },
  { what: 'trickle latency p99', scenario: 'trickle', figure: 'p99Ms', ...atMost(100, 'ms', 1) },
  {
    what: 'claim p99, 16 claimers (default path)',
    scenario: 'claim16',
    system: 'engine-fn',
    figure: 'claimP99Ms',
    ...atMost(20, 'ms', 2),
  },
  {
    what: 'claim p99, 16 claimers (advisory path)',
    scenario: 'claim16',
    system: 'engine-fn-advisory',
    figure: 'claimP99Ms',
    ...atMost(20, 'ms', 2),
  },
  {
    what: `claim p99, 16 claimers, raw SKIP LOCKED loop (claim ${BATCH}, same server)`,
    scenario: 'claim16',
    system: 'raw',
    figure: 'claimP99Ms',
    kind: 'ref',
    unit: 'ms',
    digits: 2,
  },
  { what: 'reaper, 100,000 expired leases', scenario: 'reaper', figure: 'seconds', ...atMost(3, 's', 2) },
  { what: 'consumer peak RSS (100,000 jobs)', scenario: 'rss', figure: 'peakRssMb', ...atMost(150, 'MB', 1) },
];

function atLeast(target: number, unit: string, digits = 0) {
  return { kind: 'min' as const, target, unit, digits };
}
function atMost(target: number, unit: string, digits = 0) {
  return { kind: 'max' as const, target, unit, digits };
}
