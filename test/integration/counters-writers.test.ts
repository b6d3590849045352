import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  claimJobs,
  completeJobs,
  enqueueMany,
  failJob,
  requeueExpiredLeases,
} from '../../functions/engine/index.ts';
import { completeAndClaim } from '../../functions/engine/sql/completeAndClaim.ts';
import { expectCountersMatchTable, expireLease } from '../helpers/invariants.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { fill, RUNBOOK_CANCEL, RUNBOOK_FORCE_RELEASE } from '../helpers/runbook.ts';

// Counting without transition tables (migration 0013): the engine's functions count their own
// changes in the same statement; every other writer is counted by the row triggers, whose WHEN
// is false inside the engine's functions. Both kinds of writer, interleaved, must leave the
// counters equal to count(*).

const FORCE_RELEASE = RUNBOOK_FORCE_RELEASE;
const CANCEL = RUNBOOK_CANCEL;
// The seeds' older forms (../shared/seeds/000_a91f2d182a05bb62.txt), as counters.test.ts has them.
const SEED_FORCE_RELEASE =
  "UPDATE jobs SET status='queued', locked_at = NULL, locked_by = NULL WHERE id = <job_id>;";
const SEED_SAFE_CANCEL = "UPDATE jobs SET status='failed', updated_at = now() WHERE id = <job_id>;";

const options = { workerId: 'w', leaseSeconds: 30, queues: [] as string[] };

describe.runIf(await postgresAvailable())('exact counters for every writer (issue 21)', () => {
  let t: TestSchema;
  beforeAll(async () => {
    t = await createTestSchema('cwriters');
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
  });

  it("the runbook's SQL between engine statements leaves the counters equal to count(*) by status", async () => {
    // Prepare: the engine enqueues and claims
    await enqueueMany(
      t.db,
      Array.from({ length: 30 }, (_, i) => ({ type: 't', payload: { i }, maxAttempts: 2 })),
    );
    let held = await claimJobs(t.db, { ...options, limit: 12 });
    // Act: runbook force-release (fenced), engine completion, runbook cancel of a queued and a
    // running job, the seeds' forms, engine failures, the reaper, an app's own INSERT, a riding
    // completion
    await t.db.query(fill(FORCE_RELEASE, { id: held[0]!.id, token: held[0]!.leaseToken }));
    await t.db.query(fill(FORCE_RELEASE, { id: held[1]!.id, token: '999' })); // stale token: no change
    await completeJobs(
      t.db,
      held.slice(1, 6).map((j) => ({ id: j.id, leaseToken: j.leaseToken, result: { ok: true } })),
    );
    await t.db.query(fill(CANCEL, { id: held[6]!.id }));
    await t.db.query(fill(CANCEL, { id: held[2]!.id })); // completed: not cancelled
    const { rows: queued } = await t.db.query<{ id: string }>(
      "SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 3",
    );
    await t.db.query(fill(CANCEL, { id: queued[0]!.id }));
    await t.db.query(fill(SEED_SAFE_CANCEL, { id: queued[1]!.id }));
    await t.db.query(fill(SEED_SAFE_CANCEL, { id: queued[1]!.id })); // already failed: no second count
    await t.db.query(fill(SEED_FORCE_RELEASE, { id: held[7]!.id }));
    for (const j of held.slice(8, 10))
      await failJob(t.db, {
        id: j.id,
        leaseToken: j.leaseToken,
        error: { message: 'boom', name: 'Error', attempt: j.attempt, worker: 'w' },
        permanent: j === held[8],
        backoffBaseSeconds: 0,
        maxBackoffSeconds: 0,
      });
    await t.db.query('UPDATE jobs SET max_attempts = 1 WHERE id = $1', [held[10]!.id]); // the reaper fails it
    await expireLease(t.db, held[10]!.id);
    await requeueExpiredLeases(t.db, 100);
    await t.db.query(
      `INSERT INTO jobs (task_type, status, finished_at) VALUES ('app', 'queued', NULL), ('app', 'completed', now()), ('app', 'failed', now())`,
    );
    await expectCountersMatchTable(t.db);
    held = (
      await completeAndClaim(t.db, [{ id: held[11]!.id, leaseToken: held[11]!.leaseToken }], {
        ...options,
        limit: 5,
      })
    ).claimed;
    await t.db.query("UPDATE jobs SET status = 'completed', finished_at = now() WHERE id = $1", [
      held[0]!.id,
    ]);
    await completeJobs(
      t.db,
      held.map((j) => ({ id: j.id, leaseToken: j.leaseToken })),
    );
    // Assess
    await expectCountersMatchTable(t.db);
    const { rows } = await t.db.query<{ completed: string; failed: string }>(
      "SELECT count(*) FILTER (WHERE status = 'completed') AS completed, count(*) FILTER (WHERE status = 'failed') AS failed FROM jobs",
    );
    expect(Number(rows[0]!.completed)).toBeGreaterThanOrEqual(10);
    expect(Number(rows[0]!.failed)).toBeGreaterThanOrEqual(4);
  });

  it("the engine's functions write one delta row per statement; other writers one per row they count", async () => {
    // Prepare
    await enqueueMany(
      t.db,
      Array.from({ length: 10 }, () => ({ type: 't' })),
    );
    const held = await claimJobs(t.db, { ...options, limit: 10 });
    await t.db.query('TRUNCATE job_counter_deltas');
    // Act: the engine completes 8, hand-written SQL completes 2
    await completeJobs(
      t.db,
      held.slice(0, 8).map((j) => ({ id: j.id, leaseToken: j.leaseToken })),
    );
    await t.db.query("UPDATE jobs SET status = 'completed', finished_at = now() WHERE status = 'running'");
    // Assess
    const { rows } = await t.db.query<{ completed: string }>(
      'SELECT completed FROM job_counter_deltas ORDER BY id',
    );
    expect(rows.map((r) => Number(r.completed))).toEqual([8, 1, 1]);
  });
});
