import { JOBS, RELEASE_REF, WORKERS } from '../lib/options.ts';
import { log, notes } from '../lib/results.ts';
import { release } from '../systems/release.ts';
import { interleaved } from './interleaved.ts';
import type { Scenario } from './types.ts';

/**
 * (issues 19 and 21) The previous release (git RELEASE_REF, its own code and schema) beside
 * today's consumer handler, both at shipped defaults, same harness and job count, interleaved:
 * the report's "ours ÷ previous release" ratios of server CPU/job, WAL/job and drain.
 */
export const previousReleaseScenario: Scenario = {
  id: 'previous-release',
  quick: false,
  intro: `previous-release: ${JOBS.toLocaleString('en-US')} jobs, ${WORKERS} consumers, release ${RELEASE_REF} beside today's code`,
  run: async () => {
    // A clone without the ref (shallow, or another history) still gets the rest of a full run.
    try {
      await release();
    } catch (err) {
      const note = `previous-release scenario skipped: ${RELEASE_REF} could not be extracted (${String(err).split('\n')[0]})`;
      notes.push(note);
      log(`  ${note}`);
      return;
    }
    await interleaved('previous-release', ['release-consumer', 'consumer'], JOBS, WORKERS);
  },
};
