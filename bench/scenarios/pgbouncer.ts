import { JOBS, ROUNDS } from '../lib/options.ts';
import { pgbouncerBinary, startPgbouncer } from '../lib/pgbouncer.ts';
import { log, notes } from '../lib/results.ts';
import { peerConfigs } from '../systems/peers.ts';
import { POOLED_SYSTEMS } from '../systems/pooled.ts';
import type { Scenario } from './types.ts';

/** The serverless shape: 16 short-lived consumers through PgBouncer in transaction mode. */
export const CONTAINERS = 16;

/**
 * (issue 21) Server CPU per job, WAL per job and drain rate of JOBS no-op jobs with 16
 * short-lived containers through the bench's own PgBouncer (transaction mode), ours beside
 * graphile-worker runOnce and pg-boss fetch/complete in their pooler-safe modes; interleaved
 * rounds, one bouncer for the scenario, stopped at its end.
 */
export const pgbouncerScenario: Scenario = {
  id: 'pgbouncer',
  quick: false,
  intro: `pgbouncer: ${JOBS.toLocaleString('en-US')} jobs, ${CONTAINERS} short-lived containers through PgBouncer (transaction mode)`,
  run: async () => {
    // A machine without PgBouncer still gets the rest of a full run; the skip is in the report.
    if (!pgbouncerBinary()) {
      const note = 'pgbouncer scenario skipped: no pgbouncer binary (Debian: apt-get install pgbouncer)';
      notes.push(note);
      log(`  ${note}`);
      return;
    }
    const bouncer = await startPgbouncer();
    peerConfigs.pgbouncer = { version: '', config: bouncer.config };
    notes.push(`pgbouncer scenario: ${bouncer.config}`);
    try {
      for (let round = 1; round <= ROUNDS; round++)
        for (const system of POOLED_SYSTEMS)
          await system.run({ round, jobs: JOBS, workers: CONTAINERS, scenario: 'pgbouncer' }, bouncer);
    } finally {
      await bouncer.stop();
    }
  },
};
