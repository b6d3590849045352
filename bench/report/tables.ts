/** The run's samples grouped into the report's rows: rates per system, CPU per job, target ratios. */
import { ROUNDS } from '../lib/options.ts';
import { type Sample, type SampleScenario, samples } from '../lib/results.ts';
import { round, type Summary, summarize } from '../lib/stats.ts';
import type { SystemId } from '../systems/ids.ts';
import {
  ABSOLUTE_TARGETS,
  type AbsoluteTarget,
  type Kind,
  RATIO_TARGETS,
  type RatioTarget,
} from './targets.ts';

export interface Row {
  scenario: string;
  systemId: SystemId;
  system: string;
  workers?: number;
  jobs: number;
  rate: Summary;
  seconds: Summary;
}

/** Scenarios whose samples are latencies or memory, not drain rates: left out of the rate table. */
const NOT_RATES = new Set(['trickle', 'rss', 'consumer-js']);

function groupBy(xs: readonly Sample[], key: (s: Sample) => string): Sample[][] {
  const groups = new Map<string, Sample[]>();
  for (const s of xs) {
    const k = key(s);
    groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  return [...groups.values()];
}

/** One row per scenario, system, workers and job count (to the nearest 10,000), over the rounds. */
export function table(): Row[] {
  const rates = samples.filter((s) => !NOT_RATES.has(s.scenario));
  return groupBy(
    rates,
    (s) => `${s.scenario}|${s.systemId}|${s.workers ?? ''}|${Math.round(s.jobs / 10_000)}`,
  ).map((g) => ({
    scenario: g[0]!.scenario,
    systemId: g[0]!.systemId,
    system: g[0]!.system,
    workers: g[0]!.workers,
    jobs: g[0]!.jobs,
    rate: summarize(g.map((s) => s.rate)),
    seconds: summarize(g.map((s) => s.seconds)),
  }));
}

export interface CpuRow {
  system: string;
  db: number | undefined;
  node: number;
  /** WAL bytes per job (per cluster: see bench/lib/wal.ts). */
  wal: number | undefined;
}

/** Median CPU per job by system: the main drain's samples, and the consumer's JavaScript alone. */
export function cpuTable(): CpuRow[] {
  const metered = samples.filter(
    (s) => (s.scenario === 'main' || s.scenario === 'consumer-js') && s.extra?.nodeCpuUsPerJob !== undefined,
  );
  return groupBy(metered, (s) => s.systemId).map((xs) => ({
    system: xs[0]!.system,
    // The in-memory diagnostic has no database: no figure, rather than a 0 that reads as one.
    db:
      xs[0]!.extra!.dbCpuUsPerJob === undefined
        ? undefined
        : summarize(xs.map((s) => Number(s.extra!.dbCpuUsPerJob))).median,
    node: summarize(xs.map((s) => Number(s.extra!.nodeCpuUsPerJob))).median,
    wal:
      xs[0]!.extra!.walBytesPerJob === undefined
        ? undefined
        : summarize(xs.map((s) => Number(s.extra!.walBytesPerJob))).median,
  }));
}

/** The scenarios whose own table has drain rate, CPU and WAL per job side by side. */
export const CPU_SCENARIOS: readonly SampleScenario[] = ['pgbouncer', 'previous-release', 'limits'];

export interface ScenarioCpuRow extends CpuRow {
  scenario: SampleScenario;
  rate: number;
  n: number;
  /** PgBouncer's own CPU per job (the pgbouncer scenario). */
  bouncer: number | undefined;
}

const medianOf = (xs: readonly Sample[], key: string): number | undefined => {
  const v = xs.map((s) => s.extra?.[key]).filter((x) => x !== undefined);
  return v.length ? summarize(v.map(Number)).median : undefined;
};

/** Median drain rate, CPU and WAL per job by system in each of CPU_SCENARIOS. */
export function scenarioCpuTable(): ScenarioCpuRow[] {
  return CPU_SCENARIOS.flatMap((scenario) =>
    groupBy(
      samples.filter((s) => s.scenario === scenario),
      (s) => s.systemId,
    ).map((xs) => ({
      scenario,
      system: xs[0]!.system,
      rate: summarize(xs.map((s) => s.rate)).median,
      n: xs.length,
      db: medianOf(xs, 'dbCpuUsPerJob'),
      node: medianOf(xs, 'nodeCpuUsPerJob') ?? Number.NaN,
      wal: medianOf(xs, 'walBytesPerJob'),
      bouncer: medianOf(xs, 'bouncerCpuUsPerJob'),
    })),
  );
}

/** Per-round ratio of two systems' rates (or another figure) in one scenario: what the ratio targets are about. */
function ratios(t: RatioTarget): number[] {
  const pick = (system: SystemId, round: number) =>
    samples.find((s) => s.scenario === t.scenario && s.systemId === system && s.round === round);
  const out: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const a = pick(t.num, round);
    const b = pick(t.den, round);
    const of = (s: Sample) => (t.figure ? Number(s.extra?.[t.figure]) : s.rate);
    if (a && b && of(b) > 0 && Number.isFinite(of(a) / of(b))) out.push(of(a) / of(b));
  }
  return out;
}

export interface Judged {
  what: string;
  ratios: number[];
  target: number;
  kind: Kind;
}

/** The ratio targets this run has samples for, with their per-round ratios. */
export function targets(): Judged[] {
  return RATIO_TARGETS.map((t) => ({
    what: t.what,
    ratios: ratios(t),
    target: t.target,
    kind: t.kind,
  })).filter((x) => x.ratios.length > 0);
}

export const met = (median: number, t: { target: number; kind: Kind }): boolean =>
  t.kind === 'min' ? median >= t.target : median <= t.target;
export const sign = (kind: Kind): string => (kind === 'min' ? '≥' : '≤');

/** The figures an absolute target is judged on: rate, seconds or an extra of its samples. */
function figures(t: AbsoluteTarget): number[] {
  const of = (s: Sample) =>
    t.figure === 'rate' ? s.rate : t.figure === 'seconds' ? s.seconds : s.extra?.[t.figure];
  return samples
    .filter((s) => s.scenario === t.scenario && (t.system === undefined || s.systemId === t.system))
    .map(of)
    .filter((v) => v !== undefined)
    .map(Number);
}

/** One line per absolute target this run has samples for: MET / MISS, or ref for a reference. */
export function absoluteTargets(): string[] {
  const lines: string[] = [];
  for (const t of ABSOLUTE_TARGETS) {
    const xs = figures(t);
    if (!xs.length) continue;
    const s = summarize(xs);
    const r = (x: number) => round(x, t.digits);
    const figure = `median ${r(s.median)} ${t.unit} (${r(s.min)}–${r(s.max)})`;
    if (t.kind === 'ref' || t.target === undefined) {
      lines.push(`ref   ${t.what}: ${figure}`);
      continue;
    }
    const ok = met(s.median, { target: t.target, kind: t.kind });
    lines.push(`${ok ? 'MET ' : 'MISS'}  ${t.what}: ${figure}, target ${sign(t.kind)} ${t.target} ${t.unit}`);
  }
  return lines;
}
