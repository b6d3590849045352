import type { SampleScenario } from '../lib/results.ts';
import type { SystemId } from './ids.ts';

/** One system's run in one round of a drain scenario (main, scale, bigtable). */
export interface SystemRun {
  round: number;
  jobs: number;
  workers: number;
  scenario: SampleScenario;
}

/** A system the drain scenarios can run: enqueue `jobs`, ANALYZE, drain, record one sample. */
export interface System {
  id: SystemId;
  run(r: SystemRun): Promise<void>;
}
