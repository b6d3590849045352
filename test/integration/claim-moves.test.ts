import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClaimedJob, claimJobs, completeJobs, enqueueMany } from '../../functions/engine/index.ts';
import type { Queryable } from '../../functions/engine/queryable.ts';
import { completeAndClaim } from '../../functions/engine/sql/completeAndClaim.ts';
import type { Completion } from '../../functions/engine/sql/completeJobs.ts';
import { isSerializationFailure } from '../../functions/engine/sql/serializationRetry.ts';
import { countByStatus, expectCountersMatchTable, expectLeasesUnique } from '../helpers/invariants.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { RUNBOOK_CANCEL } from './partitions.helpers.ts';

// Since 0022 the runbook's cancel of queued jobs moves each row from jobs_live to a finished
// partition; a claim whose FOR UPDATE SKIP LOCKED meets a row moved after its snapshot fails
// with SQLSTATE 40001, and the claim paths send the statement again (serializationRetry.ts).
// Here one connection moves queued rows at the head of the claim order, round after round, while
// claimers claim and complete in a loop: no claim error may escape, and every job ends in one
// terminal state with the counters exact. Rounds are fixed; nothing depends on timing.

const JOBS = 3000;
const MOVER_ROUNDS = 400;
const CLAIMERS = 4;
/** A bound on each claimer's loop: far above what the jobs need (each non-empty claim takes one or more). */
const MAX_CLAIMS = 20 * JOBS;

/**
 * The runbook's cancel, its WHERE replaced: the four queued jobs the next claims would take that
 * no claim holds (SKIP LOCKED: the mover keeps pace instead of queueing behind the claimers).
 */
const MOVE_HEAD = `${RUNBOOK_CANCEL.slice(0, RUNBOOK_CANCEL.indexOf('WHERE'))
  .replaceAll('<why>', 'stress')
  .replaceAll(
    '<you>',
    'mover',
  )}WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' ORDER BY priority DESC, run_at, id LIMIT 4 FOR UPDATE SKIP LOCKED)
  AND status = 'queued'`;

/** Counts the 40001s the database raised under the retry (they never reach the claimer). */
function counting(db: Queryable, seen: { n: number }): Queryable {
  return {
    async query(text, values) {
      try {
        return await db.query(text, values);
      } catch (err) {
        if (isSerializationFailure(err)) seen.n++;
        throw err;
      }
    },
  };
}

describe.runIf(await postgresAvailable())('claims beside hand-written moves of queued rows', () => {
  let t: TestSchema;
  beforeAll(async () => {
    t = await createTestSchema('claimmoves');
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('no claim error escapes, every job ends in one state, and the counters are exact', async () => {
    // Prepare
    await enqueueMany(
      t.db,
      Array.from({ length: JOBS }, (_, i) => ({ type: 't', payload: { i } })),
    );
    const seen = { n: 0 };
    const claims: ClaimedJob[] = [];
    const completedByEngine = new Set<string>();
    let moverDone = false;
    const mover = async () => {
      const db = t.connect({ max: 1 });
      let moved = 0;
      for (let round = 0; round < MOVER_ROUNDS; round++) moved += (await db.query(MOVE_HEAD)).rowCount ?? 0;
      moverDone = true;
      return moved;
    };
    const claimer = async (n: number) => {
      const db = counting(t.connect({ max: 1 }), seen);
      const options = { workerId: `c${n}`, limit: 1 + (n % 3), leaseSeconds: 60, queues: [] };
      let pending: Completion[] = [];
      for (let i = 0; i < MAX_CLAIMS; i++) {
        let claimed: ClaimedJob[];
        if (pending.length === 0) claimed = await claimJobs(db, options);
        else {
          const out = await completeAndClaim(db, pending, options);
          for (const id of out.completed) completedByEngine.add(id);
          claimed = out.claimed;
        }
        claims.push(...claimed);
        pending = claimed.map((j) => ({ id: j.id, leaseToken: j.leaseToken }));
        if (claimed.length === 0 && moverDone) break;
      }
      for (const id of await completeJobs(db, pending)) completedByEngine.add(id);
    };
    // Act
    const [moved] = await Promise.all([mover(), ...Array.from({ length: CLAIMERS }, (_, n) => claimer(n))]);
    // Assess
    expect(moved).toBeGreaterThan(0);
    const byStatus = await countByStatus(t.db);
    expect(byStatus).toEqual({ queued: 0, running: 0, completed: JOBS - moved, failed: moved });
    expect(completedByEngine.size).toBe(JOBS - moved);
    const perId = expectLeasesUnique(claims);
    expect([...perId.values()].every((times) => times === 1)).toBe(true);
    const { rows } = await t.db.query<{ ids: string; distinct_ids: string; cancelled: string }>(
      `SELECT count(*)::text AS ids, count(DISTINCT id)::text AS distinct_ids,
              count(*) FILTER (WHERE status = 'failed' AND last_error->>'name' = 'Cancelled')::text AS cancelled
         FROM jobs`,
    );
    expect(rows[0]).toEqual({ ids: String(JOBS), distinct_ids: String(JOBS), cancelled: String(moved) });
    await expectCountersMatchTable(t.db);
    // How often the race happened (not asserted: it depends on scheduling).
    console.info(`claim-moves: ${moved} rows moved, ${seen.n} claim(s) sent again after 40001`);
  });
});
