import { engineDrain } from '../lib/engine.ts';
import { analyze, insertQueued, withDatabase } from '../lib/harness.ts';
import { BATCH } from '../lib/options.ts';
import { migrateEngine } from '../lib/pg.ts';
import { rawDrain, rawSetup } from '../lib/raw.ts';
import { log, record } from '../lib/results.ts';
import { percentile } from '../lib/stats.ts';
import type { SystemId } from '../systems/ids.ts';
import { eachRound } from './interleaved.ts';
import type { Scenario } from './types.ts';

const JOBS = 100_000;
const CLAIMERS = 16;

/** Records one claim16 sample: its claim statements' p50 and p99, printed as they come. */
function recordClaim16(
  system: SystemId,
  round: number,
  jobs: number,
  seconds: number,
  claims: number[],
  extra: Record<string, number> = {},
): void {
  const p50 = percentile(claims, 50);
  const p99 = percentile(claims, 99);
  record({
    scenario: 'claim16',
    system,
    round,
    jobs,
    workers: CLAIMERS,
    seconds,
    extra: { claimP50Ms: p50, claimP99Ms: p99, claims: claims.length, ...extra },
  });
  log(`             claim p50 ${p50.toFixed(2)} ms p99 ${p99.toFixed(2)} ms`);
}

/** Claim statement latency with 16 concurrent claimers through the engine's functions. */
async function engineClaims(round: number, advisoryLocks: boolean): Promise<void> {
  await withDatabase(`claim_${advisoryLocks ? 'adv' : 'def'}_${round}`, async (db) => {
    await migrateEngine(db.url);
    await insertQueued(db.url, JOBS);
    await analyze(db.url);
    const claims: number[] = [];
    const t0 = performance.now();
    const r = await engineDrain(db.url, {
      loops: CLAIMERS,
      batch: BATCH,
      advisoryLocks,
      onClaim: (ms, got) => {
        if (got > 0) claims.push(ms);
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    const system = advisoryLocks ? 'engine-fn-advisory' : 'engine-fn';
    recordClaim16(system, round, r.done, seconds, claims, { lost: r.lost });
  });
}

/**
 * The reference: the raw SKIP LOCKED loop's claim statement with 16 claimers on the same
 * server, so the engine's claim p99 can be read against what the machine gives a minimal claim.
 */
async function rawClaims(round: number): Promise<void> {
  await withDatabase(`claim_raw_${round}`, async (db) => {
    await rawSetup(db.url, JOBS);
    const claims: number[] = [];
    const t0 = performance.now();
    const done = await rawDrain(db.url, CLAIMERS, BATCH, (ms) => claims.push(ms));
    recordClaim16('raw', round, done, (performance.now() - t0) / 1000, claims);
  });
}

/** (d) Claim latency with 16 claimers: default path, advisory path, raw reference. */
export const claimScenario: Scenario = {
  id: 'claim',
  quick: false,
  intro: 'claim latency (d): 16 claimers over 100,000 jobs',
  run: () =>
    eachRound(async (round) => {
      await engineClaims(round, false);
      await engineClaims(round, true);
      await rawClaims(round);
    }),
};
