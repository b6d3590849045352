import { analyze, withDatabase } from '../lib/harness.ts';
import { migrateEngine } from '../lib/pg.ts';
import { log, recordQuiet } from '../lib/results.ts';
import { deployedShapeTrickle } from '../lib/wake.ts';
import { eachRound } from './interleaved.ts';
import type { Scenario } from './types.ts';

/** Deployed-shape trickle (issue 17; lib/wake.ts): wake on enqueue against a 60 s schedule. */
async function deployedTrickle(round: number): Promise<void> {
  await withDatabase(`wake_${round}`, async (db) => {
    await migrateEngine(db.url);
    await analyze(db.url);
    const r = await deployedShapeTrickle(db.url);
    recordQuiet({
      scenario: 'deployed-trickle',
      system: 'api-consumer',
      round,
      jobs: r.trickleJobs + r.delayedJobs,
      seconds: r.seconds,
      rate: 20,
      extra: { ...r },
    });
    log(
      `  deployed-trickle r${round} start p50 ${r.startP50Ms.toFixed(1)} ms  p99 ${r.startP99Ms.toFixed(1)} ms  max ${r.startMaxMs.toFixed(1)} ms  first ${r.firstJobMs.toFixed(1)} ms; delayed late p50 ${r.delayedLateP50Ms.toFixed(1)} ms  p99 ${r.delayedLateP99Ms.toFixed(1)} ms; wake invokes ${r.wakeInvokes} (${r.invokesPerJob.toFixed(4)}/job), invocations ${r.invocations}`,
    );
  });
}

export const deployedTrickleScenario: Scenario = {
  id: 'deployed-trickle',
  quick: false,
  intro:
    'deployed-shape trickle: 60 s schedule, wake on enqueue, 20 jobs/s for 30 s, then 20 jobs delayed 5 s',
  run: () => eachRound(deployedTrickle),
};
