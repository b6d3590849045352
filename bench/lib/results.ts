/** The run's samples and notes, and the one place a sample is recorded and printed. */
import { loadavg } from 'node:os';
import { SYSTEM_LABELS, type SystemId } from '../systems/ids.ts';
import { round } from './stats.ts';

/**
 * The scenario a sample belongs to in the tables. Mostly a scenario's id; the main scenario also
 * records 'enqueue' samples, and the claim scenario records 'claim16'.
 */
export type SampleScenario =
  | 'main'
  | 'enqueue'
  | 'scale'
  | 'consumer-js'
  | 'trickle'
  | 'deployed-trickle'
  | 'claim16'
  | 'reaper'
  | 'bigtable'
  | 'rss'
  | 'pgbouncer'
  | 'previous-release'
  | 'limits';

export interface Sample {
  scenario: SampleScenario;
  /** The system's id (systems/ids.ts); `system` is its label as printed. */
  systemId: SystemId;
  system: string;
  round: number;
  jobs: number;
  workers?: number;
  seconds: number;
  rate: number;
  load1?: number;
  extra?: Record<string, unknown>;
}

export const samples: Sample[] = [];
export const notes: string[] = [];
export const log = (s: string): void => {
  process.stdout.write(`${s}\n`);
};

export const labelOf = (id: SystemId, version?: string): string =>
  version ? `${SYSTEM_LABELS[id]} ${version}` : SYSTEM_LABELS[id];

type NewSample = Omit<Sample, 'rate' | 'system' | 'systemId'> & {
  system: SystemId;
  /** A peer's installed version, appended to its label. */
  version?: string;
};

/** Adds a sample with a rate of jobs/seconds and prints its line. */
export function record(s: NewSample): Sample {
  const { system, version, ...rest } = s;
  // The 1-minute load average when the sample ended: on a shared machine it says how far to trust it.
  const sample: Sample = {
    ...rest,
    systemId: system,
    system: labelOf(system, version),
    rate: s.jobs / s.seconds,
    load1: round(loadavg()[0]!, 1),
  };
  samples.push(sample);
  log(
    `  ${s.scenario.padEnd(10)} ${sample.system.padEnd(26)} r${s.round} ${String(s.jobs).padStart(7)} jobs ${s.seconds.toFixed(3).padStart(8)} s ${Math.round(sample.rate).toLocaleString('en-US').padStart(8)} jobs/s  load ${sample.load1}`,
  );
  return sample;
}

/**
 * Adds a sample whose rate is not jobs/seconds (a trickle's offered rate, …) and whose line the
 * scenario prints itself. No load average, as before.
 */
export function recordQuiet(s: Omit<Sample, 'system' | 'systemId'> & { system: SystemId }): Sample {
  const { system, ...rest } = s;
  const sample: Sample = { ...rest, systemId: system, system: labelOf(system) };
  samples.push(sample);
  return sample;
}

/** Records one system's drain in one round of a drain scenario (main, scale, bigtable). */
export function recordDrain(
  system: SystemId,
  run: { round: number; workers: number; scenario: SampleScenario },
  drained: { jobs: number; seconds: number; extra?: Record<string, unknown> | undefined; version?: string },
): Sample {
  const { extra, ...rest } = drained;
  return record({
    scenario: run.scenario,
    system,
    round: run.round,
    workers: run.workers,
    ...rest,
    ...(extra && { extra }),
  });
}
