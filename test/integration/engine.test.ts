import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ConflictError,
  cancelJob,
  claimJobs,
  completeAndClaim,
  completeJobs,
  enqueue,
  enqueueMany,
  failJob,
  getJob,
  pauseQueue,
  pruneFinished,
  readCounters,
  releaseJobs,
  renewLeases,
  requeueExpiredLeases,
  resumeQueue,
  ValidationError,
} from '../../functions/engine/index.ts';
import { countByStatus, expectCountersMatchTable, expireLease } from '../helpers/invariants.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

const RUNBOOK_FORCE_RELEASE = (id: string) =>
  `UPDATE jobs SET status='queued', locked_at = NULL, locked_by = NULL WHERE id = ${Number(id)};`;
const RUNBOOK_SAFE_CANCEL = (id: string) =>
  `UPDATE jobs SET status='failed', updated_at = now() WHERE id = ${Number(id)};`;

const claimOpts = { workerId: 'w1', limit: 10, leaseSeconds: 30, queues: [] as string[] };
const backoff = { backoffBaseSeconds: 2, maxBackoffSeconds: 600 };
const err = (attempt: number) => ({ message: 'boom', name: 'Error', attempt, worker: 'w1' });

describe.runIf(await postgresAvailable())('engine transitions on PostgreSQL', () => {
  let t: TestSchema;
  beforeAll(async () => {
    t = await createTestSchema('engine');
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
  });

  it('enqueues with defaults and claims it, bumping attempts and the lease token', async () => {
    // Prepare
    const { job, created } = await enqueue(t.db, { type: 'example.echo', payload: { a: 1 } });
    // Act
    const [claimed] = await claimJobs(t.db, claimOpts);
    // Assess
    expect(created).toBe(true);
    expect(job).toMatchObject({
      status: 'queued',
      queue: 'default',
      priority: 0,
      attempts: 0,
      maxAttempts: 5,
    });
    expect(claimed).toMatchObject({
      id: job.id,
      type: 'example.echo',
      payload: { a: 1 },
      attempt: 1,
      leaseToken: '1',
    });
    const row = await getJob(t.db, job.id);
    expect(row).toMatchObject({ status: 'running', locked_by: 'w1', lease_seconds: 30, attempts: 1 });
    expect(row?.started_at).toBeInstanceOf(Date);
  });

  it('stores every field of a mixed batch as sent, defaults filled in by the database, in input order', async () => {
    // Prepare: rows with and without each optional field (the insert leaves defaults out of its parameter)
    const runAt = new Date(Date.now() + 3_600_000);
    const reqs = [
      { type: 'a' },
      { type: 'b', payload: { n: 1 }, queue: 'q1', priority: -3, maxAttempts: 1, delaySeconds: 60 },
      { type: 'c', payload: [1, 'x'], runAt, maxAttempts: 9 },
      { type: 'd', payload: 'text', priority: 2, maxAttempts: 5 },
    ];
    // Act
    const results = await enqueueMany(t.db, reqs);
    // Assess
    const rows = await Promise.all(results.map((r) => getJob(t.db, r.job.id)));
    expect(rows.map((r) => [r?.task_type, r?.queue, r?.priority, r?.max_attempts, r?.payload])).toEqual([
      ['a', 'default', 0, 5, null],
      ['b', 'q1', -3, 1, { n: 1 }],
      ['c', 'default', 0, 9, [1, 'x']],
      ['d', 'default', 2, 5, 'text'],
    ]);
    const [a, b, c] = rows;
    expect(b!.run_at.getTime() - b!.created_at.getTime()).toBe(60_000);
    expect(a!.run_at.getTime()).toBe(a!.created_at.getTime());
    expect(c!.run_at.getTime()).toBe(runAt.getTime());
    expect(results.map((r) => r.job.runAt.getTime())).toEqual(rows.map((r) => r!.run_at.getTime()));
  });

  it('stores every field of a batch mixing keyed and unkeyed rows as sent, and a replay returns the same jobs', async () => {
    // Prepare: keyed rows out of key order, an unkeyed row between them, optional fields on some
    const runAt = new Date(Date.now() + 3_600_000);
    const reqs = [
      { type: 'k', idempotencyKey: 'key-b', payload: { n: 2 }, priority: 4, runAt },
      { type: 'u', payload: 'plain' },
      { type: 'k', idempotencyKey: 'key-a', queue: 'q2', maxAttempts: 2, delaySeconds: 30 },
    ];
    // Act
    const first = await enqueueMany(t.db, reqs);
    const replay = await enqueueMany(t.db, reqs);
    // Assess
    const rows = await Promise.all(first.map((r) => getJob(t.db, r.job.id)));
    expect(
      rows.map((r) => [r?.task_type, r?.idempotency_key, r?.queue, r?.priority, r?.max_attempts, r?.payload]),
    ).toEqual([
      ['k', 'key-b', 'default', 4, 5, { n: 2 }],
      ['u', null, 'default', 0, 5, 'plain'],
      ['k', 'key-a', 'q2', 0, 2, null],
    ]);
    expect(rows[0]!.run_at.getTime()).toBe(runAt.getTime());
    expect(rows[2]!.run_at.getTime() - rows[2]!.created_at.getTime()).toBe(30_000);
    expect(first.map((r) => r.created)).toEqual([true, true, true]);
    expect(replay.map((r) => [r.job.id, r.created])).toEqual([
      [first[0]!.job.id, false],
      [expect.not.stringMatching(`^${first[1]!.job.id}$`), true],
      [first[2]!.job.id, false],
    ]);
  });

  it('stores a type or queue spelled NULL as that text, not as SQL NULL (they travel as text[] elements)', async () => {
    // Act
    const results = await enqueueMany(t.db, [
      { type: 'NULL', queue: 'NULL' },
      { type: 'null', payload: null },
      { type: 'a.b:c-d_e', queue: 'q:1', priority: 1 },
    ]);
    // Assess
    const rows = await Promise.all(results.map((r) => getJob(t.db, r.job.id)));
    expect(rows.map((r) => [r?.task_type, r?.queue, r?.priority, r?.payload])).toEqual([
      ['NULL', 'NULL', 0, null],
      ['null', 'default', 0, null],
      ['a.b:c-d_e', 'q:1', 1, null],
    ]);
  });

  it('jobs_enqueue_columns refuses columns of different lengths and stores nothing', async () => {
    // Act
    const call = (types: string[], payloads: string, priorities: Array<number | null> | null) =>
      t.db.query<{ o_ids: string }>(
        'SELECT * FROM jobs_enqueue_columns($1, $2, NULL, $3, NULL, NULL, NULL, 5, false)',
        [types, payloads, priorities],
      );
    // Assess
    await expect(call(['a', 'b'], '[{}]', null)).rejects.toMatchObject({ code: '22023' });
    await expect(call(['a', 'b'], '[{}, {}]', [1])).rejects.toMatchObject({ code: '22023' });
    await expect(call(['a'], '{"not": "an array"}', null)).rejects.toMatchObject({ code: '22023' });
    expect(await countByStatus(t.db)).toEqual({ queued: 0, running: 0, completed: 0, failed: 0 });
    const ok = await call(['a', 'b'], '[{}, null]', [1, null]);
    expect(ok.rows[0]!.o_ids.split(',')).toHaveLength(2);
  });

  it('claims in priority, then run_at, then id order and never before run_at', async () => {
    await enqueueMany(t.db, [
      { type: 't', payload: 1 },
      { type: 't', payload: 2, priority: 5 },
      { type: 't', payload: 3, delaySeconds: 3600, priority: 100 },
      { type: 't', payload: 4 },
    ]);
    const claimed = await claimJobs(t.db, claimOpts);
    expect(claimed.map((c) => c.payload)).toEqual([2, 1, 4]);
  });

  it('completes the previous batch and claims the next in one statement, handing the batch out in claim order', async () => {
    // Prepare: one job claimed and finished; behind it jobs whose ids run against their priority
    const [first] = await enqueueMany(t.db, [{ type: 't', payload: 0, priority: 9 }]);
    const [held] = await claimJobs(t.db, claimOpts);
    await enqueueMany(t.db, [
      { type: 't', payload: 1 },
      { type: 't', payload: 2, priority: 5 },
      { type: 't', payload: 3, priority: 7 },
      { type: 't', payload: 4, delaySeconds: 3600, priority: 100 },
    ]);
    // Act: a stale lease rides along and must change nothing
    const out = await completeAndClaim(
      t.db,
      [
        { id: held!.id, leaseToken: held!.leaseToken, result: { ok: true } },
        { id: held!.id, leaseToken: '999' },
      ],
      claimOpts,
    );
    // Assess
    expect([...out.completed]).toEqual([first!.job.id]);
    expect(out.claimed.map((c) => c.payload)).toEqual([3, 2, 1]);
    expect(out.claimed[0]).toMatchObject({
      type: 't',
      attempt: 1,
      maxAttempts: 5,
      leaseToken: '1',
      leaseSeconds: 30,
    });
    expect(await getJob(t.db, first!.job.id)).toMatchObject({ status: 'completed', result: { ok: true } });
    await expectCountersMatchTable(t.db);
  });

  for (const advisoryLocks of [false, true]) {
    it(`claims past a head of jobs all held by another transaction (${advisoryLocks ? 'advisory' : 'default'} path)`, async () => {
      // Prepare: 200 jobs; another connection holds the head locked, as claims in flight would:
      // on the advisory path, the whole first window of candidates (8 per wanted job)
      const ids = (
        await enqueueMany(
          t.db,
          Array.from({ length: 200 }, (_, i) => ({ type: 'example.echo', payload: { i } })),
        )
      ).map((r) => r.job.id);
      const window = advisoryLocks ? 40 : 60;
      const holder = t.connect({ max: 1 });
      let release: () => void = () => {};
      const held = new Promise<void>((r) => {
        release = r;
      });
      let locked: () => void = () => {};
      const isLocked = new Promise<void>((r) => {
        locked = r;
      });
      const holding = holder.transaction(async (tx) => {
        await tx.query('SELECT id FROM jobs WHERE id = ANY ($1::bigint[]) FOR UPDATE', [
          ids.slice(0, window),
        ]);
        locked();
        await held;
      });
      try {
        await isLocked;
        // Act
        const claimed = await claimJobs(t.db, { ...claimOpts, limit: 5, advisoryLocks });
        // Assess: it looked deeper and took the first free jobs, in order
        expect(claimed.map((j) => j.id)).toEqual(ids.slice(window, window + 5));
      } finally {
        release();
        await holding;
        await holder.end();
      }
    });
  }

  for (const advisory of [false, true]) {
    it(`claims from named queues through the per-queue index, never walking another queue's backlog (${advisory ? 'advisory' : 'default'} path)`, async () => {
      // Prepare: 3,000 jobs of queue "big" ahead of 20 of queue "small"
      await t.db.query(
        `INSERT INTO jobs (queue, task_type) SELECT 'big', 'example.echo' FROM generate_series(1, 3000)`,
      );
      await enqueueMany(
        t.db,
        Array.from({ length: 20 }, (_, i) => ({ type: 'example.echo', queue: 'small', payload: { i } })),
      );
      await t.db.query('ANALYZE jobs');
      // Act: claim from "small" on a connection whose nested plans come back as notices
      const client = new pg.Client({ connectionString: t.url });
      const plans: string[] = [];
      client.on('notice', (n) => plans.push(n.message ?? ''));
      await client.connect();
      let claimed: Array<{ queue: string }>;
      try {
        await client.query("LOAD 'auto_explain'");
        for (const set of [
          'auto_explain.log_min_duration = 0',
          'auto_explain.log_nested_statements = on',
          'auto_explain.log_level = notice',
          'client_min_messages = notice',
        ])
          await client.query(`SET ${set}`);
        const { rows } = await client.query<{ o_claimed: Array<{ queue: string }> }>(
          'SELECT o_claimed FROM jobs_claim($1, $2, $3, $4, $5, $6)',
          ['w1', 5, 30, ['small'], advisory, '[]'],
        );
        claimed = rows[0]!.o_claimed;
      } finally {
        await client.end();
      }
      // Assess: five jobs of "small"; the claim's plan read jobs_claim_queue_idx, not jobs_claim_idx
      expect(claimed.map((j) => j.queue)).toEqual(Array(5).fill('small'));
      // Every statement of the claim (since 0008 a few short ones per priority level, then the update)
      const claimPlan = plans.filter((p) => !p.includes('FROM jobs_claim(')).join('\n');
      expect(claimPlan).toContain('jobs_claim_queue_idx');
      expect(claimPlan).not.toContain('jobs_claim_idx on');
    });
  }

  it('a stale worker cannot complete, fail or renew a job reclaimed after its lease expired', async () => {
    const { job } = await enqueue(t.db, { type: 't' });
    const [stale] = await claimJobs(t.db, { ...claimOpts, workerId: 'stale' });
    await expireLease(t.db, job.id);
    expect(await requeueExpiredLeases(t.db, 100)).toEqual({ recovered: 1, requeued: 1, failed: 0 });
    const [fresh] = await claimJobs(t.db, { ...claimOpts, workerId: 'fresh' });
    expect(fresh!.leaseToken).toBe('2');

    expect((await completeJobs(t.db, [{ id: stale!.id, leaseToken: stale!.leaseToken }])).size).toBe(0);
    expect(
      await failJob(t.db, {
        id: stale!.id,
        leaseToken: stale!.leaseToken,
        error: err(1),
        permanent: true,
        ...backoff,
      }),
    ).toBeNull();
    expect((await renewLeases(t.db, [stale!])).size).toBe(0);
    expect((await releaseJobs(t.db, [stale!], 'deadline')).size).toBe(0);

    expect(await getJob(t.db, job.id)).toMatchObject({
      status: 'running',
      locked_by: 'fresh',
      lease_token: '2',
    });
    expect(
      (
        await completeJobs(t.db, [{ id: fresh!.id, leaseToken: fresh!.leaseToken, result: { ok: true } }])
      ).has(job.id),
    ).toBe(true);
    expect(await getJob(t.db, job.id)).toMatchObject({ status: 'completed', result: { ok: true } });
  });

  it('a stale worker cannot complete a job force-released by the runbook SQL verbatim', async () => {
    const { job } = await enqueue(t.db, { type: 't' });
    const [stale] = await claimJobs(t.db, claimOpts);
    await t.db.query(RUNBOOK_FORCE_RELEASE(job.id));
    expect((await completeJobs(t.db, [stale!])).size).toBe(0);
    expect(await getJob(t.db, job.id)).toMatchObject({ status: 'queued', locked_at: null, locked_by: null });
    const [again] = await claimJobs(t.db, claimOpts);
    expect(again!.leaseToken).toBe('2');
    expect((await completeJobs(t.db, [stale!])).size).toBe(0);
    expect((await completeJobs(t.db, [again!])).size).toBe(1);
  });

  it('the runbook safe-cancel SQL runs unchanged and fences out the worker', async () => {
    const { job } = await enqueue(t.db, { type: 't' });
    const [claimed] = await claimJobs(t.db, claimOpts);
    await t.db.query(RUNBOOK_SAFE_CANCEL(job.id));
    expect((await completeJobs(t.db, [claimed!])).size).toBe(0);
    expect(await getJob(t.db, job.id)).toMatchObject({ status: 'failed' });
    expect((await readCounters(t.db)).totals.failed).toBe(1);
  });

  it('a released job keeps its attempt count and is claimable again at once', async () => {
    const { job } = await enqueue(t.db, { type: 't', maxAttempts: 2 });
    const [c1] = await claimJobs(t.db, claimOpts);
    expect((await releaseJobs(t.db, [c1!], 'invocation deadline')).has(job.id)).toBe(true);
    expect(await getJob(t.db, job.id)).toMatchObject({ status: 'queued', attempts: 0 });
    const [c2] = await claimJobs(t.db, claimOpts);
    expect(c2).toMatchObject({ attempt: 1, leaseToken: '2' });
  });

  it('a retryable failure backs off within [base, max] and the last attempt ends failed', async () => {
    const { job } = await enqueue(t.db, { type: 't', maxAttempts: 3 });
    for (let attempt = 1; attempt <= 3; attempt++) {
      await t.db.query('UPDATE jobs SET run_at = now() WHERE id = $1', [job.id]);
      const [c] = await claimJobs(t.db, claimOpts);
      expect(c!.attempt).toBe(attempt);
      const { rows } = await t.db.query<{ now: Date }>('SELECT now() AS now');
      const outcome = await failJob(t.db, {
        ...c!,
        error: err(attempt),
        permanent: false,
        backoffBaseSeconds: 2,
        maxBackoffSeconds: 3,
      });
      if (attempt < 3) {
        expect(outcome!.status).toBe('queued');
        const delay = (outcome!.runAt.getTime() - rows[0]!.now.getTime()) / 1000;
        expect(delay).toBeGreaterThanOrEqual(1.9);
        expect(delay).toBeLessThanOrEqual(3.5);
      } else {
        expect(outcome!.status).toBe('failed');
      }
    }
    expect(await getJob(t.db, job.id)).toMatchObject({
      status: 'failed',
      attempts: 3,
      last_error: { message: 'boom', attempt: 3 },
    });
  });

  it('a NonRetryable failure ends failed on the first attempt', async () => {
    const { job } = await enqueue(t.db, { type: 't', maxAttempts: 5 });
    const [c] = await claimJobs(t.db, claimOpts);
    const outcome = await failJob(t.db, { ...c!, error: err(1), permanent: true, ...backoff });
    expect(outcome!.status).toBe('failed');
    expect(await getJob(t.db, job.id)).toMatchObject({ status: 'failed', attempts: 1 });
  });

  it('a job whose lease expires max_attempts times ends failed with the reason', async () => {
    const { job } = await enqueue(t.db, { type: 'poison', maxAttempts: 3 });
    let recovered = 0;
    for (let i = 0; i < 3; i++) {
      const claimed = await claimJobs(t.db, claimOpts);
      expect(claimed).toHaveLength(1);
      await expireLease(t.db, job.id);
      recovered += (await requeueExpiredLeases(t.db, 100)).recovered;
    }
    expect(await claimJobs(t.db, claimOpts)).toHaveLength(0);
    const row = await getJob(t.db, job.id);
    expect(row).toMatchObject({ status: 'failed', attempts: 3, last_error: { name: 'LeaseExpired' } });
    expect(String((row!.last_error as { message: string }).message)).toContain('attempts exhausted');
    expect(recovered).toBe(3);
    expect((await readCounters(t.db)).totals).toMatchObject({ recovered: 3, failed: 1 });
  });

  it('renewing a lease keeps the reaper away; an unexpired lease is not recovered', async () => {
    const { job } = await enqueue(t.db, { type: 't' });
    const [c] = await claimJobs(t.db, { ...claimOpts, leaseSeconds: 5 });
    await expireLease(t.db, job.id, '4 seconds');
    expect((await renewLeases(t.db, [c!])).has(job.id)).toBe(true);
    await new Promise((r) => setTimeout(r, 1200));
    expect((await requeueExpiredLeases(t.db, 100)).recovered).toBe(0);
    expect(await getJob(t.db, job.id)).toMatchObject({ status: 'running' });
  });

  it('a paused queue is not claimed from; others are, and resume restores it', async () => {
    await enqueueMany(t.db, [
      { type: 't', queue: 'emails' },
      { type: 't', queue: 'reports' },
    ]);
    await pauseQueue(t.db, 'emails', 'test', 'maintenance');
    const claimed = await claimJobs(t.db, claimOpts);
    expect(claimed.map((c) => c.queue)).toEqual(['reports']);
    expect(await claimJobs(t.db, { ...claimOpts, advisoryLocks: true })).toHaveLength(0);
    await resumeQueue(t.db, 'emails', 'test');
    expect((await claimJobs(t.db, claimOpts)).map((c) => c.queue)).toEqual(['emails']);
  });

  it('claims only from the queues it is given', async () => {
    await enqueueMany(t.db, [
      { type: 't', queue: 'a' },
      { type: 't', queue: 'b' },
      { type: 't', queue: 'c' },
    ]);
    const claimed = await claimJobs(t.db, { ...claimOpts, queues: ['a', 'c'] });
    expect(claimed.map((c) => c.queue).sort()).toEqual(['a', 'c']);
  });

  it('cancel ends a queued job failed with the reason; a terminal job is left alone', async () => {
    const { job } = await enqueue(t.db, { type: 't' });
    const cancelled = await cancelJob(t.db, job.id, 'customer asked', 'alice');
    expect(cancelled).toMatchObject({
      status: 'failed',
      last_error: { name: 'Cancelled', message: 'customer asked', actor: 'alice' },
    });
    expect(await cancelJob(t.db, job.id, 'again', 'alice')).toBeNull();
    expect(await getJob(t.db, job.id)).toMatchObject({ last_error: { message: 'customer asked' } });
  });

  it('a job force-released with its attempts exhausted gets one more attempt instead of breaking the claim', async () => {
    const { job } = await enqueue(t.db, { type: 't', maxAttempts: 1 });
    await claimJobs(t.db, claimOpts);
    await t.db.query(RUNBOOK_FORCE_RELEASE(job.id));
    const claimed = await claimJobs(t.db, claimOpts);
    expect(claimed).toHaveLength(1);
    expect(await getJob(t.db, job.id)).toMatchObject({ attempts: 2, max_attempts: 2 });
  });

  it('prunes finished jobs past retention, including ones cancelled by hand, and keeps the totals', async () => {
    const [a, b, c] = await enqueueMany(t.db, [{ type: 't' }, { type: 't' }, { type: 't' }]);
    const claimed = await claimJobs(t.db, { ...claimOpts, limit: 1 });
    await completeJobs(t.db, claimed);
    await t.db.query(RUNBOOK_SAFE_CANCEL(b!.job.id));
    await t.db.query(
      `UPDATE jobs SET finished_at = now() - interval '8 days', updated_at = now() - interval '8 days' WHERE status IN ('completed', 'failed')`,
    );
    expect(await pruneFinished(t.db, 7, 1000)).toBe(2);
    expect(await getJob(t.db, a!.job.id)).toBeNull();
    expect(await getJob(t.db, c!.job.id)).toMatchObject({ status: 'queued' });
    expect((await readCounters(t.db)).totals).toMatchObject({ submitted: 3, completed: 1, failed: 1 });
  });

  it('rejects out-of-range input before touching the database', async () => {
    await expect(enqueue(t.db, { type: 't', priority: 1e9 })).rejects.toBeInstanceOf(ValidationError);
    await expect(enqueue(t.db, { type: 't', maxAttempts: 0 })).rejects.toBeInstanceOf(ValidationError);
    await expect(enqueue(t.db, { type: 't', runAt: 'tomorrow' })).rejects.toBeInstanceOf(ValidationError);
    await expect(enqueue(t.db, { type: 't', delaySeconds: -1 })).rejects.toBeInstanceOf(ValidationError);
    await expect(enqueue(t.db, { type: 't', queue: 'bad queue' })).rejects.toBeInstanceOf(ValidationError);
    await expect(enqueueMany(t.db, [{ type: 't' }, { type: '' }])).rejects.toThrow(/jobs\[1\]\.type/);
    expect((await countByStatus(t.db)).queued).toBe(0);
  });

  it('a batch with a conflicting idempotency key stores nothing', async () => {
    await enqueue(t.db, { type: 't', payload: 1, idempotencyKey: 'k1' });
    await expect(
      enqueueMany(t.db, [
        { type: 't', payload: 'new' },
        { type: 't', payload: 2, idempotencyKey: 'k1' },
      ]),
    ).rejects.toBeInstanceOf(ConflictError);
    expect((await countByStatus(t.db)).queued).toBe(1);
    await expectCountersMatchTable(t.db);
  });

  it('replays a batch with the same keys as the same jobs, marking them not created', async () => {
    const reqs = [
      { type: 't', payload: { x: 1, y: 2 }, idempotencyKey: 'a' },
      { type: 't', payload: 3 },
      { type: 't', payload: { y: 2, x: 1 }, idempotencyKey: 'b' },
    ];
    const first = await enqueueMany(t.db, reqs);
    const second = await enqueueMany(t.db, [reqs[0]!, reqs[2]!]);
    expect(first.map((r) => r.created)).toEqual([true, true, true]);
    expect(first.map((r) => r.job.payload)).toEqual([{ x: 1, y: 2 }, 3, { x: 1, y: 2 }]);
    expect(second.map((r) => r.created)).toEqual([false, false]);
    expect(second.map((r) => r.job.id)).toEqual([first[0]!.job.id, first[2]!.job.id]);
  });
});
