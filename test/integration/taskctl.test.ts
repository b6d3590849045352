import { userInfo } from 'node:os';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  claimJobs,
  completeJobs,
  enqueue,
  failJob,
  getJob,
  readCounters,
} from '../../functions/engine/index.ts';
import { requeueJobs } from '../../functions/engine/sql/requeueJobs.ts';
import { expireLease } from '../helpers/invariants.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { oneLine, taskctl } from './taskctl.helpers.ts';

/** Who taskctl records when no --actor is given: the OS user. */
const osUser = userInfo().username;
const claimAs = (workerId: string, queues: string[] = []) => ({
  workerId,
  limit: 10,
  leaseSeconds: 30,
  queues,
});

// Each test spawns the CLI a few times; under parallel suites on 2 cores a spawn has taken 10 s.
describe.runIf(await postgresAvailable())('taskctl job commands on PostgreSQL', { timeout: 180_000 }, () => {
  let t: TestSchema;
  const cli = (...args: string[]) => taskctl(t.url, args);
  const audit = async (jobId: string) =>
    (
      await t.db.query<{ action: string; actor: string; reason: string | null; details: unknown }>(
        'SELECT action, actor, reason, details FROM job_audit WHERE job_id = $1 ORDER BY id',
        [jobId],
      )
    ).rows;

  beforeAll(async () => {
    t = await createTestSchema('taskctl');
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas, job_audit');
  });

  it('release-stuck requeues an expired lease with who and why, and the job then completes exactly once', async () => {
    // Prepare: a worker claimed the job and died; its lease is an hour old.
    const { job } = await enqueue(t.db, { type: 'example.echo', payload: { n: 1 } });
    const [dead] = await claimJobs(t.db, claimAs('w-dead'));
    await expireLease(t.db, job.id);
    const fresh = (await enqueue(t.db, { type: 'example.echo' })).job;
    await claimJobs(t.db, claimAs('w-alive'));
    // Act
    const run = await taskctl(t.url, ['release-stuck', '--yes', '--reason', 'INC-1 crash'], {
      TASKCTL_ACTOR: 'alice',
    });
    // Assess: only the expired one, recorded on the job and in the audit.
    expect(run.code).toBe(0);
    expect(run.json.requeued).toEqual([{ id: job.id, previousStatus: 'running', previousWorker: 'w-dead' }]);
    expect(run.json.skipped).toEqual([]);
    const row = await getJob(t.db, job.id);
    expect(row).toMatchObject({ status: 'queued', locked_by: null, locked_at: null, attempts: 1 });
    expect(row?.last_error).toMatchObject({
      name: 'Requeued',
      actor: 'alice',
      message: 'INC-1 crash',
      worker: 'w-dead',
    });
    expect((await getJob(t.db, fresh.id))?.status).toBe('running');
    expect(await audit(job.id)).toEqual([
      expect.objectContaining({ action: 'release-stuck', actor: 'alice', reason: 'INC-1 crash' }),
    ]);
    expect((await readCounters(t.db)).totals.recovered).toBe(1);
    // The dead worker's late completion is fenced out; the new claim completes it once.
    expect(await completeJobs(t.db, [{ id: job.id, leaseToken: dead!.leaseToken }])).toEqual(new Set());
    const [again] = await claimJobs(t.db, claimAs('w-new'));
    expect(again).toMatchObject({ id: job.id, leaseToken: '2', attempt: 2 });
    expect(await completeJobs(t.db, [{ id: job.id, leaseToken: again!.leaseToken }])).toEqual(
      new Set([job.id]),
    );
    expect(await completeJobs(t.db, [{ id: job.id, leaseToken: again!.leaseToken }])).toEqual(new Set());
    expect((await getJob(t.db, job.id))?.status).toBe('completed');
  });

  it('jobs show returns the job with its manual history', async () => {
    const { job } = await enqueue(t.db, { type: 'example.echo' });
    await claimJobs(t.db, claimAs('w1'));
    await taskctl(t.url, ['requeue', job.id, '--reason', 'hung'], { TASKCTL_ACTOR: 'bob' });
    const show = await cli('jobs', 'show', job.id);
    expect(show.code).toBe(0);
    expect(show.json.job).toMatchObject({
      id: job.id,
      status: 'queued',
      lastError: { actor: 'bob', message: 'hung' },
    });
    expect(show.json.audit).toEqual([
      expect.objectContaining({ action: 'requeue', actor: 'bob', reason: 'hung', jobId: job.id }),
    ]);
    expect(show.json.audit[0].details).toMatchObject({
      previousStatus: 'running',
      worker: 'w1',
      leaseToken: '1',
    });
  });

  it('a requeue while a completion is in flight leaves the job completed, and the requeue reports it skipped', async () => {
    // Prepare: the worker's completion holds the row, not yet committed.
    const { job } = await enqueue(t.db, { type: 'example.echo' });
    const [claimed] = await claimJobs(t.db, claimAs('w1'));
    const worker = t.connect({ max: 1 });
    let releaseWorker: () => void = () => {};
    const gate = new Promise<void>((r) => {
      releaseWorker = r;
    });
    let completedInTx: Set<string> | undefined;
    const completion = worker.transaction(async (tx) => {
      completedInTx = await completeJobs(tx, [{ id: job.id, leaseToken: claimed!.leaseToken }]);
      await gate;
    });
    await expect.poll(() => completedInTx).toBeDefined();
    // Act
    const run = await cli('requeue', job.id);
    releaseWorker();
    await completion;
    // Assess: one outcome, completed; the requeue changed nothing and said so.
    expect(run.code).toBe(3);
    expect(run.json.requeued).toEqual([]);
    expect(run.json.skipped).toEqual([expect.objectContaining({ id: job.id })]);
    expect(oneLine(run.stderr)).toMatch(/changed meanwhile/);
    expect(await getJob(t.db, job.id)).toMatchObject({ status: 'completed' });
    expect(await audit(job.id)).toEqual([]);
  });

  it('a requeue and a completion racing on many jobs always leave exactly one outcome per job', async () => {
    // The fenced statement itself, raced 40 times on separate connections (no process spawns).
    const operator = t.connect({ max: 1 });
    const worker = t.connect({ max: 1 });
    const outcomes = { requeued: 0, completed: 0 };
    for (let i = 0; i < 40; i++) {
      const { job } = await enqueue(t.db, { type: 'example.echo' });
      const [c] = await claimJobs(t.db, claimAs('w1'));
      const [requeued, completed] = await Promise.all([
        requeueJobs(operator, [{ id: job.id, status: 'running', leaseToken: c!.leaseToken }], {
          action: 'requeue',
          actor: 'race',
          reason: 'race',
          resetAttempts: false,
        }),
        completeJobs(worker, [{ id: job.id, leaseToken: c!.leaseToken }]),
      ]);
      const row = await getJob(t.db, job.id);
      expect(requeued.length + completed.size).toBe(1);
      expect(row?.status).toBe(requeued.length === 1 ? 'queued' : 'completed');
      if (requeued.length === 1) {
        outcomes.requeued++;
        await claimJobs(t.db, claimAs('w2'));
        await t.db.query(`UPDATE jobs SET status = 'completed', finished_at = now() WHERE id = $1`, [job.id]);
      } else outcomes.completed++;
    }
    expect(outcomes.requeued + outcomes.completed).toBe(40);
  });

  it('requeue refuses unknown ids and finished jobs, changing nothing', async () => {
    const done = (await enqueue(t.db, { type: 'example.echo' })).job;
    const [c] = await claimJobs(t.db, claimAs('w1'));
    await completeJobs(t.db, [{ id: done.id, leaseToken: c!.leaseToken }]);
    const running = (await enqueue(t.db, { type: 'example.echo' })).job;
    await claimJobs(t.db, claimAs('w2'));
    const [unknown, finished] = await Promise.all([
      cli('requeue', running.id, '999999'),
      cli('requeue', running.id, done.id, '--yes'),
    ]);
    expect(unknown.code).toBe(3);
    expect(oneLine(unknown.stderr)).toMatch(/not found: 999999/);
    expect(finished.code).toBe(3);
    expect(finished.json.rejected).toEqual([expect.objectContaining({ id: done.id })]);
    expect(await getJob(t.db, running.id)).toMatchObject({ status: 'running', locked_by: 'w2' });
    expect(await getJob(t.db, done.id)).toMatchObject({ status: 'completed' });
  });

  it('cancel of a terminal job exits 3 and changes nothing, not even the other ids named', async () => {
    // Prepare
    const done = (await enqueue(t.db, { type: 'example.echo' })).job;
    const [c] = await claimJobs(t.db, claimAs('w1'));
    await completeJobs(t.db, [{ id: done.id, leaseToken: c!.leaseToken }]);
    const queued = (await enqueue(t.db, { type: 'example.echo' })).job;
    const before = await t.db.query('SELECT * FROM jobs ORDER BY id');
    // Act
    const run = await cli('cancel', queued.id, done.id, '--reason', 'oops', '--yes');
    // Assess
    expect(run.code).toBe(3);
    expect(oneLine(run.stderr)).toMatch(new RegExp(`already finished: ${done.id} \\(completed\\)`));
    expect((await t.db.query('SELECT * FROM jobs ORDER BY id')).rows).toEqual(before.rows);
    expect((await t.db.query('SELECT count(*)::int AS n FROM job_audit')).rows[0]).toEqual({ n: 0 });
  });

  it('cancel of a running job ends it failed with the reason and actor, and fences its worker out', async () => {
    const { job } = await enqueue(t.db, { type: 'example.sleep', payload: { ms: 1 } });
    const [c] = await claimJobs(t.db, claimAs('w1'));
    const run = await taskctl(t.url, ['cancel', job.id, '--reason', 'customer asked'], {
      TASKCTL_ACTOR: 'carol',
    });
    expect(run.code).toBe(0);
    expect(run.json.cancelled).toEqual([{ id: job.id, previousStatus: 'running', worker: 'w1' }]);
    expect(await getJob(t.db, job.id)).toMatchObject({
      status: 'failed',
      last_error: { name: 'Cancelled', message: 'customer asked', actor: 'carol', previousStatus: 'running' },
    });
    expect(await audit(job.id)).toEqual([expect.objectContaining({ action: 'cancel', actor: 'carol' })]);
    expect(await completeJobs(t.db, [{ id: job.id, leaseToken: c!.leaseToken }])).toEqual(new Set());
    expect((await getJob(t.db, job.id))?.status).toBe('failed');
  });

  it('pause stops claims from that queue only, shows in status, and resume lets them through again', async () => {
    // Prepare
    const report = (await enqueue(t.db, { type: 'example.echo', queue: 'reports' })).job;
    const other = (await enqueue(t.db, { type: 'example.echo', queue: 'default' })).job;
    // Act
    const paused = await taskctl(t.url, ['pause', 'reports', '--reason', 'downstream down'], {
      TASKCTL_ACTOR: 'dan',
    });
    const claimedWhilePaused = await claimJobs(t.db, claimAs('w1'));
    const status = await cli('status');
    const resumed = await cli('resume', 'reports');
    const claimedAfter = await claimJobs(t.db, claimAs('w1'));
    // Assess
    expect(paused.code).toBe(0);
    expect(paused.json.paused).toEqual(['reports']);
    expect(claimedWhilePaused.map((j) => j.id)).toEqual([other.id]);
    expect(status.code).toBe(0);
    expect(status.json.pausedQueues).toEqual([
      expect.objectContaining({ name: 'reports', pausedBy: 'dan', reason: 'downstream down' }),
    ]);
    expect(status.json.queues).toEqual([
      expect.objectContaining({ queue: 'default', running: 1, paused: false }),
      expect.objectContaining({ queue: 'reports', queued: 1, paused: true }),
    ]);
    expect(resumed.code).toBe(0);
    expect(claimedAfter.map((j) => j.id)).toEqual([report.id]);
    const { rows } = await t.db.query<{ action: string; queue: string; actor: string }>(
      'SELECT action, queue, actor FROM job_audit WHERE job_id IS NULL ORDER BY id',
    );
    expect(rows).toEqual([
      { action: 'pause', queue: 'reports', actor: 'dan' },
      { action: 'resume', queue: 'reports', actor: osUser },
    ]);
  });

  it('resume without a queue name needs --yes (exit 2, nothing resumed); with it every paused queue resumes', async () => {
    // Prepare
    await taskctl(t.url, ['pause', 'q-a', 'q-b', '--reason', 'incident'], { TASKCTL_ACTOR: 'dan' });
    const paused = async () =>
      (await t.db.query<{ name: string }>('SELECT name FROM queues WHERE paused ORDER BY name')).rows.map(
        (r) => r.name,
      );
    // Act
    const refused = await cli('resume');
    const afterRefusal = await paused();
    const applied = await cli('resume', '--yes');
    // Assess
    expect(refused.code).toBe(2);
    expect(oneLine(refused.stderr)).toMatch(/--yes/);
    expect(afterRefusal).toEqual(expect.arrayContaining(['q-a', 'q-b']));
    expect(applied.code).toBe(0);
    expect(applied.json.resumed).toEqual(expect.arrayContaining(['q-a', 'q-b']));
    expect(await paused()).toEqual([]);
  });

  it('retry-failed --since past any date the database can compute is a usage error (exit 2), not a database error', async () => {
    const res = await cli('retry-failed', '--since', '99999999999d', '--dry-run');
    expect(res.code).toBe(2);
    expect(oneLine(res.stderr)).toMatch(/--since/);
    expect((await cli('retry-failed', '--since', '36500d', '--dry-run')).code).toBe(0);
  });

  it('status lists running jobs past their lease with worker and age, and the 5-minute failure ratio', async () => {
    const a = (await enqueue(t.db, { type: 'example.echo' })).job;
    const b = (await enqueue(t.db, { type: 'example.echo', maxAttempts: 1 })).job;
    const c = (await enqueue(t.db, { type: 'example.echo' })).job;
    const claimed = await claimJobs(t.db, claimAs('w-old'));
    const token = (id: string) => claimed.find((x) => x.id === id)!.leaseToken;
    await completeJobs(t.db, [{ id: a.id, leaseToken: token(a.id) }]);
    await failJob(t.db, {
      id: b.id,
      leaseToken: token(b.id),
      permanent: true,
      error: { message: 'x', name: 'Error', attempt: 1, worker: 'w-old' },
      backoffBaseSeconds: 1,
      maxBackoffSeconds: 1,
    });
    await expireLease(t.db, c.id, '10 minutes');
    const run = await cli('status');
    expect(run.code).toBe(0);
    expect(run.json.expiredLeases).toEqual([expect.objectContaining({ id: c.id, lockedBy: 'w-old' })]);
    expect(run.json.expiredLeases[0].lockedForSeconds).toBeGreaterThanOrEqual(600);
    expect(run.json.failureRatio).toMatchObject({ completed: 1, failed: 1, ratio: 0.5 });
  });

  it('retry-failed lists dead letters until --yes, then redrives them with a fresh budget, leaving cancelled jobs alone', async () => {
    // Prepare: one exhausted failure, one cancellation.
    const dead = (await enqueue(t.db, { type: 'example.flaky', maxAttempts: 1 })).job;
    const [c] = await claimJobs(t.db, claimAs('w1'));
    await failJob(t.db, {
      id: dead.id,
      leaseToken: c!.leaseToken,
      permanent: false,
      error: { message: 'smtp down', name: 'Error', attempt: 1, worker: 'w1' },
      backoffBaseSeconds: 1,
      maxBackoffSeconds: 1,
    });
    const cancelled = (await enqueue(t.db, { type: 'example.echo' })).job;
    await taskctl(t.url, ['cancel', cancelled.id, '--reason', 'not wanted']);
    // Act
    const preview = await cli('retry-failed', '--since', '1h');
    const afterPreview = await getJob(t.db, dead.id);
    const applied = await cli('retry-failed', '--since', '1h', '--yes', '--reason', 'smtp fixed');
    // Assess
    expect(preview.code).toBe(2);
    expect(preview.json.targets.map((x: { id: string }) => x.id)).toEqual([dead.id]);
    expect(afterPreview?.status).toBe('failed');
    expect(applied.code).toBe(0);
    expect(applied.json.requeued).toEqual([{ id: dead.id, previousStatus: 'failed', previousWorker: 'w1' }]);
    expect(await getJob(t.db, dead.id)).toMatchObject({ status: 'queued', attempts: 0, finished_at: null });
    expect((await getJob(t.db, cancelled.id))?.status).toBe('failed');
    expect(await audit(dead.id)).toEqual([
      expect.objectContaining({
        action: 'retry-failed',
        reason: 'smtp fixed',
        details: expect.objectContaining({ resetAttempts: true }),
      }),
    ]);
  });

  it('jobs list filters and pages by id with a keyset cursor; enqueue validates against the registry', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push(
        (await enqueue(t.db, { type: i % 2 ? 'example.sleep' : 'example.echo', payload: { ms: 1 } })).job.id,
      );
    const [page1, page2, enq] = await Promise.all([
      cli('jobs', 'list', '--type', 'example.echo', '--limit', '2'),
      cli('jobs', 'list', '--status', 'queued', '--limit', '3', '--before', ids[3]!),
      cli('enqueue', 'example.sleep', '--payload', '{"ms":5}', '--queue', 'smoke'),
    ]);
    expect(page1.json.jobs.map((j: { id: string }) => j.id)).toEqual([ids[4], ids[2]]);
    expect(page1.json.nextCursor).toBe(ids[2]);
    expect(page2.json.jobs.map((j: { id: string }) => j.id)).toEqual([ids[2], ids[1], ids[0]]);
    expect(enq.code).toBe(0);
    expect(enq.json).toMatchObject({
      created: true,
      job: { type: 'example.sleep', queue: 'smoke', payload: { ms: 5 } },
    });
    expect(await audit(enq.json.job.id)).toEqual([
      expect.objectContaining({ action: 'enqueue', actor: osUser }),
    ]);
  });
});
