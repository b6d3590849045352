import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ConflictError,
  type Db,
  type EnqueueRequest,
  type EnqueueResult,
  enqueue,
  enqueueMany,
  readCounters,
} from '../../functions/engine/index.ts';
import { countByStatus, expectCountersMatchTable } from '../helpers/invariants.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

const CALLERS = 50;

describe.runIf(await postgresAvailable())('idempotency keys under concurrency', () => {
  let t: TestSchema;
  // One single-connection pool per caller, so the 50 requests really race in 50 sessions.
  let pools: Db[];
  beforeAll(async () => {
    t = await createTestSchema('idem');
    pools = Array.from({ length: CALLERS }, () => t.connect({ max: 1 }));
    await Promise.all(pools.map((p) => p.query('SELECT 1')));
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
  });

  it('50 concurrent enqueues with one key make one job, all get its id, exactly one is told created', async () => {
    // Prepare
    const req: EnqueueRequest = {
      type: 'email.send',
      payload: { to: 'a@example.com' },
      idempotencyKey: 'order-1',
    };
    // Act
    const results = await Promise.all(pools.map((db) => enqueue(db, req)));
    // Assess
    expect(await countByStatus(t.db)).toMatchObject({ queued: 1 });
    expect(new Set(results.map((r) => r.job.id)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect((await readCounters(t.db)).totals.submitted).toBe(1);
    await expectCountersMatchTable(t.db);
  });

  it('a different request with a used key is a ConflictError naming the key, and stores nothing', async () => {
    // Prepare
    const { job } = await enqueue(t.db, { type: 'email.send', payload: { n: 1 }, idempotencyKey: 'k' });
    // Act
    const attempt = enqueue(t.db, { type: 'email.send', payload: { n: 2 }, idempotencyKey: 'k' });
    // Assess
    await expect(attempt).rejects.toBeInstanceOf(ConflictError);
    await expect(attempt).rejects.toMatchObject({ code: 'idempotency_conflict', details: { jobId: job.id } });
    await expect(attempt).rejects.toThrow(/"k"/);
    expect(await countByStatus(t.db)).toMatchObject({ queued: 1 });
  });

  it('concurrent different requests with one key: one job; its twins get it, the others a ConflictError', async () => {
    // Prepare: half the callers send payload A, half payload B, all with the same key
    const requests = pools.map((_, i) => ({ type: 't', payload: { v: i % 2 }, idempotencyKey: 'shared' }));
    // Act
    const settled = await Promise.allSettled(pools.map((db, i) => enqueue(db, requests[i]!)));
    // Assess
    const ok = settled.filter((s): s is PromiseFulfilledResult<EnqueueResult> => s.status === 'fulfilled');
    const rejected = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
    expect(await countByStatus(t.db)).toMatchObject({ queued: 1 });
    expect(ok).toHaveLength(CALLERS / 2);
    expect(rejected).toHaveLength(CALLERS / 2);
    for (const r of rejected) expect(r.reason).toBeInstanceOf(ConflictError);
    const winner = ok[0]!.value.job;
    expect(ok.every((s) => s.value.job.id === winner.id)).toBe(true);
    expect(ok.every((s) => JSON.stringify(s.value.job.payload) === JSON.stringify(winner.payload))).toBe(
      true,
    );
    expect(ok.filter((s) => s.value.created)).toHaveLength(1);
  });

  it('50 concurrent enqueueMany batches with the same keys in varying order make each job once, without deadlock', async () => {
    // Five rounds of 40 keyed jobs; each caller sends them rotated, so batches meet the keys in
    // different orders (before keyed rows were inserted in key order, this deadlocked in 3 of 5 runs of this test).
    const KEYS = 40;
    for (let round = 0; round < 5; round++) {
      // Prepare
      const base: EnqueueRequest[] = Array.from({ length: KEYS }, (_, k) => ({
        type: 't',
        payload: { k },
        idempotencyKey: `batch-${round}-${k}`,
      }));
      const batchFor = (i: number) => [...base.slice(i % KEYS), ...base.slice(0, i % KEYS)];
      // Act
      const settled = await Promise.allSettled(pools.map((db, i) => enqueueMany(db, batchFor(i))));
      // Assess
      const errors = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
      expect(errors.map((e) => `${(e.reason as Error).name}: ${(e.reason as Error).message}`)).toEqual([]);
      const batches = settled.map((s) => (s as PromiseFulfilledResult<EnqueueResult[]>).value);
      const idByKey = new Map<string, Set<string>>();
      let created = 0;
      for (const batch of batches) {
        for (const [i, r] of batch.entries()) {
          const key = r.job.idempotencyKey!;
          idByKey.set(key, (idByKey.get(key) ?? new Set()).add(r.job.id));
          if (r.created) created++;
          expect(r.job.payload).toEqual({ k: Number(key.split('-')[2]) });
          expect(key).toBe(batchFor(batches.indexOf(batch))[i]!.idempotencyKey);
        }
      }
      expect([...idByKey.values()].map((ids) => ids.size)).toEqual(Array(KEYS).fill(1));
      expect(created).toBe(KEYS);
    }
    expect(await countByStatus(t.db)).toMatchObject({ queued: 5 * KEYS });
    await expectCountersMatchTable(t.db);
  });

  it('50 concurrent identical enqueueMany batches make one job per key, each created exactly once', async () => {
    // Prepare
    const batch: EnqueueRequest[] = [
      { type: 't', payload: 1, idempotencyKey: 'same-a' },
      { type: 't', payload: 2, idempotencyKey: 'same-b' },
    ];
    // Act
    const results = await Promise.all(pools.map((db) => enqueueMany(db, batch)));
    // Assess
    expect(await countByStatus(t.db)).toMatchObject({ queued: 2 });
    expect(new Set(results.map((r) => r[0]!.job.id)).size).toBe(1);
    expect(new Set(results.map((r) => r[1]!.job.id)).size).toBe(1);
    expect(results.filter((r) => r[0]!.created)).toHaveLength(1);
    expect(results.filter((r) => r[1]!.created)).toHaveLength(1);
  });

  it('an enqueueMany batch reusing a key for a different request is a ConflictError and stores nothing', async () => {
    // Prepare
    await enqueueMany(t.db, [{ type: 't', payload: 1, idempotencyKey: 'm1' }]);
    // Act
    const attempt = enqueueMany(t.db, [
      { type: 't', payload: 'fresh', idempotencyKey: 'm2' },
      { type: 't', payload: 'changed', idempotencyKey: 'm1' },
    ]);
    // Assess
    await expect(attempt).rejects.toBeInstanceOf(ConflictError);
    await expect(attempt).rejects.toMatchObject({ details: { index: 1, idempotencyKey: 'm1' } });
    expect(await countByStatus(t.db)).toMatchObject({ queued: 1 });
    await expectCountersMatchTable(t.db);
  });
});
