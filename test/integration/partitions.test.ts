import { afterAll, describe, expect, it } from 'vitest';
import {
  type ClaimedJob,
  cancelJob,
  claimJobs,
  completeJobs,
  enqueue,
  enqueueMany,
  failJob,
  getJob,
  loadMigrations,
  migrate,
} from '../../functions/engine/index.ts';
import type { Queryable } from '../../functions/engine/queryable.ts';
import { completeAndClaim } from '../../functions/engine/sql/completeAndClaim.ts';
import { migrationsDir } from '../../functions/platform/paths.ts';
import { countByStatus, expectCountersMatchTable } from '../helpers/invariants.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import {
  attachedPartitions,
  type BareSchema,
  bareSchema,
  before0022Files,
  dayPartition,
  fill,
  jobKeys,
  migrationsBefore0022,
  partitionOf,
  RUNBOOK_CANCEL,
  RUNBOOK_FORCE_RELEASE,
  totals,
} from './partitions.helpers.ts';

// The row model of migration 0022: `jobs` partitioned into jobs_live, one partition per UTC day
// of finished rows, jobs_legacy (the replaced table's finished rows) and jobs_finished_overflow
// (DEFAULT). The upgrade keeps every row, key, id and counter; the partition functions make,
// fill and drop partitions; hand-written SQL that moves rows between partitions counts exactly.

const claim = { workerId: 'w', leaseSeconds: 30, queues: [] as string[] };
const failure = (j: ClaimedJob) => ({
  id: j.id,
  leaseToken: j.leaseToken,
  error: { message: 'boom', name: 'Error', attempt: j.attempt, worker: 'w' },
  permanent: true,
  backoffBaseSeconds: 0,
  maxBackoffSeconds: 0,
});
const KEYS = ['k-queued', 'k-running', 'k-completed', 'k-failed'] as const;
const keyed = (key: string) => ({ type: 'old', payload: { key }, idempotencyKey: key });

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function freshSchema(): Promise<TestSchema> {
  const t = await createTestSchema('parts');
  cleanups.push(() => t.drop());
  return t;
}

interface OldRow {
  id: string;
  status: string;
  idempotency_key: string | null;
  lease_token: string;
  locked_by: string | null;
  finished_at: Date | null;
  updated_at: Date;
}

/**
 * A schema migrated as before 0022 and filled by the engine and the runbook's SQL: 12 jobs, three
 * of each status, one of each status keyed; two finished ten days ago; one cancelled by the
 * seeds' old form, which wrote no finished_at. Returns the rows and counters as they were.
 */
async function seededBefore0022(): Promise<{
  s: BareSchema;
  before: OldRow[];
  byKey: Record<string, string>;
  held: Map<string, ClaimedJob>;
  lastId: number;
}> {
  const old = migrationsBefore0022();
  cleanups.push(async () => old.remove());
  expect(before0022Files(old.dir)).not.toContain('0022_partitioned_jobs.sql');
  const s = await bareSchema('pre0022');
  cleanups.push(() => s.drop());
  await migrate(s.db, loadMigrations(old.dir));
  const plain = await enqueueMany(
    s.db,
    Array.from({ length: 8 }, (_, i) => ({ type: 'old', payload: { i } })),
  );
  const keyedJobs = await enqueueMany(s.db, KEYS.map(keyed));
  const ids = plain.map((r) => r.job.id);
  const byKey = Object.fromEntries(KEYS.map((k, i) => [k, keyedJobs[i]!.job.id]));
  const held = new Map((await claimJobs(s.db, { ...claim, limit: 12 })).map((j) => [j.id, j]));
  const lease = (id: string) => held.get(id)!;
  await completeJobs(
    s.db,
    [ids[0]!, ids[1]!, byKey['k-completed']!].map((id) => ({ id, leaseToken: lease(id).leaseToken })),
  );
  for (const id of [ids[2]!, byKey['k-failed']!]) await failJob(s.db, failure(lease(id)));
  for (const id of [ids[3]!, ids[4]!, byKey['k-queued']!])
    await s.db.query(fill(RUNBOOK_FORCE_RELEASE, { id, token: lease(id).leaseToken }));
  await s.db.query("UPDATE jobs SET status = 'failed', updated_at = now() WHERE id = $1", [ids[5]!]);
  await s.db.query("UPDATE jobs SET finished_at = now() - interval '10 days' WHERE id = ANY ($1::bigint[])", [
    [ids[0]!, ids[2]!],
  ]);
  const { rows: before } = await s.db.query<OldRow>(
    'SELECT id::text, status, idempotency_key, lease_token::text, locked_by, finished_at, updated_at FROM jobs ORDER BY id',
  );
  const { rows: seq } = await s.db.query<{ name: string }>(
    "SELECT pg_get_serial_sequence('jobs', 'id') AS name",
  );
  const { rows: last } = await s.db.query<{ last: string }>(
    `SELECT last_value::text AS last FROM ${seq[0]!.name}`,
  );
  return { s, before, byKey, held, lastId: Number(last[0]!.last) };
}

describe.runIf(await postgresAvailable())('the partitioned row model (migration 0022)', () => {
  it('an upgrade keeps every row in its place, every key, the ids and the counters', async () => {
    // Prepare
    const { s, before, byKey, lastId } = await seededBefore0022();
    const db = s.db;
    const counted = await totals(db);
    expect(await countByStatus(db)).toEqual({ queued: 3, running: 3, completed: 3, failed: 3 });
    // Act
    await migrate(db, loadMigrations(migrationsDir()));
    // Assess: live rows in jobs_live, finished ones in jobs_legacy, attached
    expect(await attachedPartitions(db)).toContain('jobs_legacy');
    const { rows: legacy } = await db.query<{ kind: string }>(
      "SELECT kind FROM job_partitions WHERE name = 'jobs_legacy'",
    );
    expect(legacy).toEqual([{ kind: 'legacy' }]);
    for (const row of before) {
      const live = row.status === 'queued' || row.status === 'running';
      expect(await partitionOf(db, row.id), `job ${row.id} (${row.status})`).toBe(
        live ? 'jobs_live' : 'jobs_legacy',
      );
    }
    const { rows: after } = await db.query<OldRow>(
      'SELECT id::text, status, idempotency_key, lease_token::text, locked_by, finished_at, updated_at FROM jobs ORDER BY id',
    );
    const noFinishedAt = before.find((r) => r.status === 'failed' && r.finished_at === null)!;
    expect(after.find((r) => r.id === noFinishedAt.id)!.finished_at).toEqual(noFinishedAt.updated_at);
    const shape = (rows: OldRow[]) => rows.map(({ finished_at: _f, ...rest }) => rest);
    expect(shape(after)).toEqual(shape(before));
    expect(await jobKeys(db)).toEqual(byKey);
    expect(await totals(db)).toEqual(counted);
    await expectCountersMatchTable(db);
    // Assess: the ids continue after the old identity's
    const [next] = await enqueueMany(db, [{ type: 'new' }]);
    expect(Number(next!.job.id)).toBe(lastId + 1);
  });

  it('after an upgrade, claim, complete, cancel, keyed replays and reads by id work on the old rows', async () => {
    // Prepare
    const { s, before, byKey, held } = await seededBefore0022();
    const db = s.db;
    await migrate(db, loadMigrations(migrationsDir()));
    const running = before.filter((r) => r.status === 'running').map((r) => held.get(r.id)!);
    const queued = before.filter((r) => r.status === 'queued').map((r) => r.id);
    // Act: a keyed replay of a live and of a finished pre-upgrade key
    const replays = await Promise.all(['k-queued', 'k-completed'].map((k) => enqueue(db, keyed(k))));
    // Assess
    expect(replays.map((r) => [r.created, r.job.id])).toEqual([
      [false, byKey['k-queued']],
      [false, byKey['k-completed']],
    ]);
    // Act: the leases taken before the upgrade complete, fail, are cancelled; the queued are claimed
    const completed = await completeJobs(db, [{ id: running[0]!.id, leaseToken: running[0]!.leaseToken }]);
    const failed = await failJob(db, failure(running[1]!));
    const cancelled = await cancelJob(db, running[2]!.id, 'test', 'tester');
    const claimed = await claimJobs(db, { ...claim, limit: 10 });
    const done = await completeAndClaim(
      db,
      claimed.map((j) => ({ id: j.id, leaseToken: j.leaseToken })),
      { ...claim, limit: 10 },
    );
    // Assess
    expect([...completed]).toEqual([running[0]!.id]);
    expect(failed?.status).toBe('failed');
    expect(cancelled?.status).toBe('failed');
    expect(claimed.map((j) => j.id).sort()).toEqual([...queued].sort());
    expect([...done.completed].sort()).toEqual([...queued].sort());
    expect(done.claimed).toEqual([]);
    await expectCountersMatchTable(db);
    // Act: rows in a day's partition and in the overflow, by hand
    const { rows: extra } = await db.query<{ id: string }>(
      `INSERT INTO jobs (task_type, status, finished_at)
       VALUES ('app', 'completed', now() + interval '2 days'), ('app', 'failed', now() + interval '20 days')
       RETURNING id::text`,
    );
    const [queuedNow] = await enqueueMany(db, [{ type: 'new' }]);
    // Assess: a read by id finds a row in every partition
    const places = new Map<string, string>();
    for (const id of [...before.map((r) => r.id), ...extra.map((r) => r.id), queuedNow!.job.id]) {
      expect((await getJob(db, id))?.id, `job ${id}`).toBe(id);
      places.set((await partitionOf(db, id))!, id);
    }
    expect([...places.keys()].sort()).toEqual(
      ['jobs_finished_overflow', 'jobs_legacy', 'jobs_live', await dayPartition(db, 2)].sort(),
    );
    await expectCountersMatchTable(db);
  });

  it('prunes the legacy rows in batches, then drops jobs_legacy whole once past the retention', async () => {
    // Prepare: two legacy rows finished ten days ago, the others today
    const { s, before } = await seededBefore0022();
    const db = s.db;
    await migrate(db, loadMigrations(migrationsDir()));
    const live = before.filter((r) => r.status === 'queued' || r.status === 'running').map((r) => r.id);
    // Act
    const batches = [];
    for (let i = 0; i < 3; i++) batches.push(await prune(db, 5, 1));
    // Assess
    expect(batches).toEqual([1, 1, 0]);
    expect(await countByStatus(db)).toMatchObject({ completed: 2, failed: 2 });
    // Act: a cutoff three days ahead is past jobs_legacy's bound (tomorrow)
    const dropped = await prune(db, -3, 1000);
    // Assess
    expect(dropped).toBe(4);
    expect(await attachedPartitions(db)).not.toContain('jobs_legacy');
    const { rows } = await db.query<{ id: string }>('SELECT id::text FROM jobs ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual(live);
    expect(Object.keys(await jobKeys(db)).sort()).toEqual(['k-queued', 'k-running']);
  });

  it('a fresh install has no legacy table, and today and a week ahead partitioned', async () => {
    // Prepare
    const t = await freshSchema();
    // Act
    const attached = await attachedPartitions(t.db);
    // Assess
    const { rows } = await t.db.query<{ legacy: string | null }>(
      "SELECT to_regclass('jobs_legacy')::text AS legacy",
    );
    expect(rows[0]!.legacy).toBeNull();
    const days = await Promise.all(Array.from({ length: 8 }, (_, i) => dayPartition(t.db, i)));
    expect(attached.sort()).toEqual(['jobs_finished_overflow', 'jobs_live', ...days].sort());
  });
});

/** jobs_prune_finished, as the reaper calls it. */
async function prune(db: Queryable, olderThanDays: number, limit: number): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT jobs_prune_finished($1, $2)::text AS n', [
    olderThanDays,
    limit,
  ]);
  return Number(rows[0]!.n);
}

describe.runIf(await postgresAvailable())('the partition functions', () => {
  it('jobs_partitions_ensure is idempotent, makes today + N, and moves overflow rows into the day it makes', async () => {
    // Prepare: a keyed finished row 20 days ahead, past the week made at install
    const t = await freshSchema();
    const { rows } = await t.db.query<{ id: string }>(
      `INSERT INTO jobs (task_type, status, finished_at, idempotency_key)
       VALUES ('app', 'completed', now() + interval '20 days', 'k-ahead') RETURNING id::text`,
    );
    const id = rows[0]!.id;
    expect(await partitionOf(t.db, id)).toBe('jobs_finished_overflow');
    const counted = await totals(t.db);
    // Act
    const again = await ensure(t.db, 7);
    const ahead = await ensure(t.db, 25);
    const twice = await ensure(t.db, 25);
    // Assess
    expect([again, ahead, twice]).toEqual([0, 18, 0]);
    const days = await Promise.all(Array.from({ length: 26 }, (_, i) => dayPartition(t.db, i)));
    expect((await attachedPartitions(t.db)).sort()).toEqual(
      ['jobs_finished_overflow', 'jobs_live', ...days].sort(),
    );
    expect(await partitionOf(t.db, id)).toBe(await dayPartition(t.db, 20));
    expect(await jobKeys(t.db)).toEqual({ 'k-ahead': id });
    expect(await totals(t.db)).toEqual(counted);
    await expectCountersMatchTable(t.db);
  });

  it('jobs_prune_finished drops whole days past the cutoff, deletes old overflow rows in batches, keeps live jobs', async () => {
    // Prepare: finished rows today and tomorrow, five in the overflow (ten days ago: no partition),
    // one far ahead in the overflow, live jobs
    const t = await freshSchema();
    const live = (await enqueueMany(t.db, [{ type: 'a' }, { type: 'b', idempotencyKey: 'k-live' }])).map(
      (r) => r.job.id,
    );
    await t.db.query(
      `INSERT INTO jobs (task_type, status, finished_at, idempotency_key) VALUES
         ('day0', 'completed', now(), 'k-day0'), ('day0', 'failed', now(), NULL),
         ('day1', 'completed', now() + interval '1 day', NULL),
         ('ahead', 'completed', now() + interval '40 days', NULL)`,
    );
    await t.db.query(
      `INSERT INTO jobs (task_type, status, finished_at)
       SELECT 'old', 'failed', now() - interval '10 days' FROM generate_series(1, 5)`,
    );
    const { rows: overflow } = await t.db.query<{ n: string }>(
      'SELECT count(*)::text AS n FROM jobs_finished_overflow',
    );
    expect(overflow[0]!.n).toBe('6');
    // Act
    const batches = [await prune(t.db, 5, 3), await prune(t.db, 5, 3), await prune(t.db, 5, 3)];
    // Assess
    expect(batches).toEqual([3, 2, 0]);
    expect(await attachedPartitions(t.db)).toContain(await dayPartition(t.db, 0));
    // Act: a cutoff three days ahead is past today's, tomorrow's and the next day's partitions
    const dropped = await prune(t.db, -3, 1000);
    // Assess
    expect(dropped).toBe(3);
    const attached = await attachedPartitions(t.db);
    for (const day of [0, 1, 2]) expect(attached).not.toContain(await dayPartition(t.db, day));
    expect(attached).toContain(await dayPartition(t.db, 3));
    const { rows } = await t.db.query<{ task_type: string }>('SELECT task_type FROM jobs ORDER BY task_type');
    expect(rows.map((r) => r.task_type)).toEqual(['a', 'ahead', 'b']);
    expect(Object.keys(await jobKeys(t.db))).toEqual(['k-live']);
    expect(live).toHaveLength(2);
  });
});

describe.runIf(await postgresAvailable())('hand-written SQL that moves rows between partitions', () => {
  let t: TestSchema;
  const reset = async () => {
    t ??= await freshSchema();
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
  };

  it("the runbook's cancel moves live rows to today's partition, counted once each", async () => {
    // Prepare
    await reset();
    await enqueueMany(t.db, [{ type: 'a' }, { type: 'b', idempotencyKey: 'k-b' }, { type: 'c' }]);
    const [running] = await claimJobs(t.db, { ...claim, limit: 1 });
    const { rows: queued } = await t.db.query<{ id: string }>(
      "SELECT id::text FROM jobs WHERE status = 'queued' ORDER BY id",
    );
    // Act: one by id (running, then queued), the rest in one statement
    await t.db.query(fill(RUNBOOK_CANCEL, { id: running!.id }));
    await t.db.query(fill(RUNBOOK_CANCEL, { id: queued[0]!.id }));
    await t.db.query(fill(RUNBOOK_CANCEL, { id: queued[0]!.id })); // already failed: no change
    const bulk = await t.db.query(
      RUNBOOK_CANCEL.replace('id = <job_id>', "status = 'queued'").replaceAll(/<\w+>/g, 'x'),
    );
    // Assess
    expect(bulk.rowCount).toBe(1);
    const today = await dayPartition(t.db, 0);
    for (const id of [running!.id, ...queued.map((r) => r.id)])
      expect(await partitionOf(t.db, id)).toBe(today);
    expect(Object.keys(await jobKeys(t.db))).toEqual(['k-b']);
    expect(await totals(t.db)).toMatchObject({ submitted: 3, completed: 0, failed: 3 });
    await expectCountersMatchTable(t.db);
  });

  it('a requeue of failed jobs moves them back to jobs_live, claimable at once, without a count', async () => {
    // Prepare: two jobs failed (the engine, the runbook), one keyed
    await reset();
    await enqueueMany(t.db, [{ type: 'a', idempotencyKey: 'k-a' }, { type: 'b' }]);
    const held = await claimJobs(t.db, { ...claim, limit: 2 });
    await failJob(t.db, failure(held[0]!));
    await t.db.query(fill(RUNBOOK_CANCEL, { id: held[1]!.id }));
    const counted = await totals(t.db);
    // Act: the redrive by hand (the status alone: jobs_route clears finished_at)
    await t.db.query(
      "UPDATE jobs SET status = 'queued', attempts = 0, updated_at = now() WHERE status = 'failed'",
    );
    // Assess
    const { rows } = await t.db.query<{ p: string; finished_at: Date | null }>(
      'SELECT tableoid::regclass::text AS p, finished_at FROM jobs ORDER BY id',
    );
    expect(rows).toEqual([
      { p: 'jobs_live', finished_at: null },
      { p: 'jobs_live', finished_at: null },
    ]);
    expect(await totals(t.db)).toEqual(counted);
    expect(await jobKeys(t.db)).toEqual({ 'k-a': held[0]!.id });
    const again = await claimJobs(t.db, { ...claim, limit: 5 });
    expect(again.map((j) => j.id).sort()).toEqual(held.map((j) => j.id).sort());
    await expectCountersMatchTable(t.db, { terminalExact: false });
  });

  it('a finished row moved to another day counts only a change of status', async () => {
    // Prepare: one job completed by the engine, into today's partition
    await reset();
    const [job] = await enqueueMany(t.db, [{ type: 'a' }]);
    const held = await claimJobs(t.db, { ...claim, limit: 1 });
    await completeJobs(t.db, [{ id: held[0]!.id, leaseToken: held[0]!.leaseToken }]);
    const id = job!.job.id;
    expect(await partitionOf(t.db, id)).toBe(await dayPartition(t.db, 0));
    const counted = await totals(t.db);
    // Act / Assess: another day, same status: moved, nothing counted
    await t.db.query("UPDATE jobs SET finished_at = finished_at + interval '1 day' WHERE id = $1", [id]);
    expect(await partitionOf(t.db, id)).toBe(await dayPartition(t.db, 1));
    expect(await totals(t.db)).toEqual(counted);
    // Act / Assess: another day and completed -> failed: one failure
    await t.db.query(
      "UPDATE jobs SET status = 'failed', finished_at = finished_at + interval '1 day' WHERE id = $1",
      [id],
    );
    expect(await partitionOf(t.db, id)).toBe(await dayPartition(t.db, 2));
    expect(await totals(t.db)).toEqual({ ...counted, failed: counted.failed + 1 });
    // Act / Assess: failed -> completed in the same partition (no move): one completion
    await t.db.query("UPDATE jobs SET status = 'completed' WHERE id = $1", [id]);
    expect(await partitionOf(t.db, id)).toBe(await dayPartition(t.db, 2));
    expect(await totals(t.db)).toEqual({
      ...counted,
      completed: counted.completed + 1,
      failed: counted.failed + 1,
    });
    const { rows } = await t.db.query<{ n: string }>('SELECT count(*)::text AS n FROM job_counter_deltas');
    expect(rows[0]!.n).toBe('4');
  });

  it('a DELETE or a TRUNCATE by hand frees the keys; a hand-written INSERT with a taken key fails', async () => {
    // Prepare: keyed jobs live and finished
    await reset();
    const jobs = await enqueueMany(
      t.db,
      ['k1', 'k2', 'k3'].map((k) => ({ type: 'a', idempotencyKey: k })),
    );
    await t.db.query(fill(RUNBOOK_CANCEL, { id: jobs[1]!.job.id }));
    // Act: a duplicate key, by hand
    const duplicate = t.db.query("INSERT INTO jobs (task_type, idempotency_key) VALUES ('app', 'k1')");
    // Assess
    await expect(duplicate).rejects.toMatchObject({ code: '23505' });
    expect(await totals(t.db)).toMatchObject({ submitted: 3 });
    // Act: DELETE a live and a finished keyed job
    await t.db.query('DELETE FROM jobs WHERE id = ANY ($1::bigint[])', [[jobs[0]!.job.id, jobs[1]!.job.id]]);
    // Assess
    expect(await jobKeys(t.db)).toEqual({ k3: jobs[2]!.job.id });
    const [reused] = await enqueueMany(t.db, [{ type: 'a', idempotencyKey: 'k1' }]);
    expect(reused!.created).toBe(true);
    await t.db.query("INSERT INTO jobs (task_type, idempotency_key) VALUES ('app', 'k2')");
    expect(Object.keys(await jobKeys(t.db)).sort()).toEqual(['k1', 'k2', 'k3']);
    // Act: TRUNCATE
    await t.db.query('TRUNCATE jobs');
    // Assess
    expect(await jobKeys(t.db)).toEqual({});
    const [fresh] = await enqueueMany(t.db, [{ type: 'a', idempotencyKey: 'k3' }]);
    expect(fresh!.created).toBe(true);
  });

  it('jobs_route keeps finished_at consistent with the status', async () => {
    // Prepare
    await reset();
    await enqueueMany(t.db, [{ type: 'a' }, { type: 'b' }]);
    const [held] = await claimJobs(t.db, { ...claim, limit: 1 });
    const { rows: q } = await t.db.query<{ id: string }>("SELECT id::text FROM jobs WHERE status = 'queued'");
    const { rows: start } = await t.db.query<{ at: Date }>('SELECT now() AS at');
    // Act: a finished_at on a live row; a completion by hand without one
    await t.db.query('UPDATE jobs SET finished_at = now() WHERE id = $1', [q[0]!.id]);
    await t.db.query("UPDATE jobs SET status = 'completed' WHERE id = $1", [held!.id]);
    // Assess
    const { rows } = await t.db.query<{ id: string; p: string; finished: boolean | null }>(
      'SELECT id::text, tableoid::regclass::text AS p, finished_at >= $1 AS finished FROM jobs ORDER BY id',
      [start[0]!.at],
    );
    expect(rows).toEqual(
      [
        { id: held!.id, p: await dayPartition(t.db, 0), finished: true },
        { id: q[0]!.id, p: 'jobs_live', finished: null },
      ].sort((a, b) => Number(a.id) - Number(b.id)),
    );
    await expectCountersMatchTable(t.db);
  });
});

/** jobs_partitions_ensure, as the reaper calls it. */
async function ensure(db: Queryable, daysAhead: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT jobs_partitions_ensure($1) AS n', [daysAhead]);
  return rows[0]!.n;
}
