import { JOBS, WORKERS } from '../lib/options.ts';
import { interleaved } from './interleaved.ts';
import type { Scenario } from './types.ts';

/** (b) 20,000 and 100,000 jobs at 1, 4 and 8 workers (the main scenario's shape left out). */
export const scale: Scenario = {
  id: 'scale',
  quick: false,
  intro: 'scale (b): 20,000 and 100,000 jobs at 1, 4 and 8 workers',
  async run() {
    for (const jobs of [20_000, 100_000]) {
      for (const workers of [1, 4, 8]) {
        if (jobs === JOBS && workers === WORKERS) continue; // that is the main scenario
        await interleaved('scale', ['raw', 'consumer', 'graphile', 'pgboss'], jobs, workers);
      }
    }
  },
};
