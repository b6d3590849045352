import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type ClaimedJob,
  cancelJob,
  claimJobs,
  compactCounters,
  completeJobs,
  enqueue,
  enqueueMany,
  failJob,
  readCounters,
  releaseJobs,
  requeueExpiredLeases,
} from '../../functions/engine/index.ts';
import {
  countByStatus,
  expectCountersMatchTable,
  expectGaugesMatchTable,
  expireLease,
} from '../helpers/invariants.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

// The runbook's hand-written SQL, verbatim (../shared/seeds/000_a91f2d182a05bb62.txt).
const RUNBOOK_FORCE_RELEASE = (id: string) =>
  `UPDATE jobs SET status='queued', locked_at = NULL, locked_by = NULL WHERE id = ${Number(id)};`;
const RUNBOOK_SAFE_CANCEL = (id: string) =>
  `UPDATE jobs SET status='failed', updated_at = now() WHERE id = ${Number(id)};`;

const claim = (t: TestSchema, limit: number, queues: string[] = []) =>
  claimJobs(t.db, { workerId: 'w', limit, leaseSeconds: 30, queues });
// Zero backoff: a retried job is claimable again at once, so the workload stays deterministic.
const failure = (c: ClaimedJob, permanent: boolean) => ({
  id: c.id,
  leaseToken: c.leaseToken,
  error: { message: 'boom', name: 'Error', attempt: c.attempt, worker: 'w' },
  permanent,
  backoffBaseSeconds: 0,
  maxBackoffSeconds: 0,
});

describe.runIf(await postgresAvailable())('exact counters on PostgreSQL', () => {
  let t: TestSchema;
  beforeAll(async () => {
    t = await createTestSchema('counters');
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
  });

  it('after a mixed workload including the runbook SQL and a compaction, the counters equal count(*) by status', async () => {
    // Prepare: 60 jobs over two queues, some keyed (and replayed: a replay is not a submission)
    await enqueueMany(
      t.db,
      Array.from({ length: 50 }, (_, i) => ({ type: 't', queue: i % 2 ? 'a' : 'b', maxAttempts: 2 })),
    );
    for (let i = 0; i < 10; i++) await enqueue(t.db, { type: 't', queue: 'a', idempotencyKey: `k${i}` });
    await enqueue(t.db, { type: 't', queue: 'a', idempotencyKey: 'k0' });
    await expectCountersMatchTable(t.db);
    let recovered = 0;

    // Act 1: claim 40; complete 10, fail 8 retryable (5 on their last attempt later), 4 permanent,
    // release 3, cancel 2 running and 2 queued, runbook force-release 3 and safe-cancel 2
    const batch = await claim(t, 40);
    expect(batch).toHaveLength(40);
    const take = (n: number) => batch.splice(0, n);
    expect((await completeJobs(t.db, take(10))).size).toBe(10);
    for (const c of take(8)) expect((await failJob(t.db, failure(c, false)))?.status).toBe('queued');
    for (const c of take(4)) expect((await failJob(t.db, failure(c, true)))?.status).toBe('failed');
    expect((await releaseJobs(t.db, take(3), 'deadline')).size).toBe(3);
    for (const c of take(2)) expect(await cancelJob(t.db, c.id, 'operator', 'test')).not.toBeNull();
    for (const c of take(3)) await t.db.query(RUNBOOK_FORCE_RELEASE(c.id));
    for (const c of take(2)) await t.db.query(RUNBOOK_SAFE_CANCEL(c.id));
    const { rows: queued } = await t.db.query<{ id: string }>(
      `SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 4`,
    );
    for (const r of queued.slice(0, 2))
      expect(await cancelJob(t.db, String(r.id), 'operator', 'test')).not.toBeNull();
    for (const r of queued.slice(2)) await t.db.query(RUNBOOK_SAFE_CANCEL(String(r.id)));
    // The 8 left running lose their lease to the reaper.
    expect(batch).toHaveLength(8);
    await expireLease(t.db, 'all');
    const reaped = await requeueExpiredLeases(t.db, 100);
    expect(reaped).toEqual({ recovered: 8, requeued: 8, failed: 0 });
    recovered += reaped.recovered;
    await expectCountersMatchTable(t.db);
    await expectGaugesMatchTable(t.db);

    // Compaction in the middle changes no total.
    const before = await readCounters(t.db);
    expect(await compactCounters(t.db, 0)).toBeGreaterThan(0);
    expect((await readCounters(t.db)).totals).toEqual(before.totals);

    // Act 2: claim everything left, twice; fail everyone once more (exhausting the maxAttempts: 2
    // ones), let one round expire into the reaper, complete the rest
    const second = await claim(t, 100);
    expect(second.length).toBeGreaterThan(0);
    const outcomes = await Promise.all(second.slice(0, 10).map((c) => failJob(t.db, failure(c, false))));
    expect(outcomes.some((o) => o?.status === 'failed')).toBe(true);
    await expireLease(t.db, 'all');
    const reaped2 = await requeueExpiredLeases(t.db, 100);
    expect(reaped2.recovered).toBe(second.length - 10);
    recovered += reaped2.recovered;
    const third = await claim(t, 100);
    await completeJobs(t.db, third.slice(0, Math.ceil(third.length / 2)));

    // Assess
    await expectCountersMatchTable(t.db);
    await expectGaugesMatchTable(t.db);
    const byStatus = await countByStatus(t.db);
    expect((await readCounters(t.db)).totals).toEqual({
      submitted: 60,
      completed: byStatus.completed,
      failed: byStatus.failed,
      recovered,
    });
    expect(byStatus.failed).toBeGreaterThan(8);
    expect(byStatus.running).toBeGreaterThan(0);
  });

  it('a job sent back from a terminal state by hand counts each terminal transition', async () => {
    // Prepare: one completed, one failed
    const [a, b] = await enqueueMany(t.db, [{ type: 't' }, { type: 't' }]);
    const claimed = await claim(t, 2);
    await completeJobs(
      t.db,
      claimed.filter((c) => c.id === a!.job.id),
    );
    await failJob(t.db, failure(claimed.find((c) => c.id === b!.job.id)!, true));
    // Act: the runbook's force-release on terminal jobs (an operator re-running them), then finish them again
    await t.db.query(RUNBOOK_FORCE_RELEASE(a!.job.id));
    await t.db.query(RUNBOOK_FORCE_RELEASE(b!.job.id));
    await completeJobs(t.db, await claim(t, 2));
    // Assess: totals count transitions into a state; the table shows the latest state
    expect((await readCounters(t.db)).totals).toEqual({
      submitted: 2,
      completed: 3,
      failed: 1,
      recovered: 0,
    });
    expect(await countByStatus(t.db)).toMatchObject({ completed: 2, failed: 0 });
    await expectCountersMatchTable(t.db, { terminalExact: false });
  });

  it('an update that leaves a terminal job in the same state adds nothing', async () => {
    // Prepare
    const { job } = await enqueue(t.db, { type: 't' });
    await t.db.query(RUNBOOK_SAFE_CANCEL(job.id));
    // Act: the same cancel again, and an unrelated touch of every row
    await t.db.query(RUNBOOK_SAFE_CANCEL(job.id));
    await t.db.query('UPDATE jobs SET updated_at = now()');
    // Assess
    expect((await readCounters(t.db)).totals).toMatchObject({ submitted: 1, failed: 1 });
    await expectCountersMatchTable(t.db);
  });

  it('compaction into minute rows and into the base row keeps every total identical', async () => {
    // Prepare: many small statements, so there are many delta rows
    for (let i = 0; i < 20; i++) await enqueue(t.db, { type: 't' });
    for (let i = 0; i < 5; i++) await completeJobs(t.db, await claim(t, 2));
    const c = await claim(t, 1);
    await expireLease(t.db, c[0]!.id);
    await requeueExpiredLeases(t.db, 10);
    const before = await readCounters(t.db);
    const rowsBefore = await deltaRows(t);
    // Act 1: fold everything into per-minute rows
    const moved = await compactCounters(t.db, 0);
    const afterMinute = await readCounters(t.db);
    const rowsAfterMinute = await deltaRows(t);
    // Act 2: fold the minute rows into the base row
    await compactCounters(t.db, 0, 0);
    const afterBase = await readCounters(t.db);
    // Assess
    expect(before.totals).toEqual({ submitted: 20, completed: 10, failed: 0, recovered: 1 });
    expect(moved).toBe(rowsBefore);
    expect(rowsAfterMinute).toBeLessThan(rowsBefore);
    expect(afterMinute.totals).toEqual(before.totals);
    expect(afterBase.totals).toEqual(before.totals);
    const { rows } = await t.db.query<{ at: string }>(
      'SELECT at::text AS at FROM job_counter_deltas WHERE compacted',
    );
    expect(rows.map((r) => r.at)).toEqual(['-infinity']);
    await expectCountersMatchTable(t.db);
  });
});

async function deltaRows(t: TestSchema): Promise<number> {
  const { rows } = await t.db.query<{ n: string }>('SELECT count(*) AS n FROM job_counter_deltas');
  return Number(rows[0]!.n);
}
