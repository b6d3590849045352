import { ROUNDS } from '../lib/options.ts';
import type { SampleScenario } from '../lib/results.ts';
import { type RunnableSystemId, SYSTEMS } from '../systems/index.ts';

/**
 * Runs `systems` one after another, round after round (A B C A B C …), so that drift on a
 * shared machine hits every system alike.
 */
export async function interleaved(
  scenario: SampleScenario,
  systems: readonly RunnableSystemId[],
  jobs: number,
  workers: number,
  rounds = ROUNDS,
): Promise<void> {
  for (let round = 1; round <= rounds; round++) {
    for (const id of systems) await SYSTEMS[id].run({ round, jobs, workers, scenario });
  }
}

/** `fn(round)` for each round. */
export async function eachRound(fn: (round: number) => Promise<void>, rounds = ROUNDS): Promise<void> {
  for (let round = 1; round <= rounds; round++) await fn(round);
}
