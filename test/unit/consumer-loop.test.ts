import { describe, expect, it } from 'vitest';
import type { Statements } from '../../functions/engine/consumer/statements.ts';
import { runConsumer } from '../../functions/engine/consumer.ts';
import type { ConsumerSettings, RunnableTask, TaskLookup } from '../../functions/engine/contracts.ts';
import type { ClaimedJob } from '../../functions/engine/types.ts';
import { job, noDb, recordingLogger, statements } from './consumer-fakes.ts';

const settings: ConsumerSettings = {
  batchSize: 10,
  concurrency: 4,
  leaseSeconds: 30,
  idleExitMs: 0,
  pollMs: 10,
  queues: [],
  advisoryLocks: false,
  backoffBaseSeconds: 1,
  maxBackoffSeconds: 60,
};

const anyPayload = { safeParse: (v: unknown) => ({ success: true as const, data: v }) };
const tasks = (over: Partial<RunnableTask> = {}): TaskLookup => ({
  get: (type) =>
    ({ type, schema: anyPayload, run: async () => ({ ok: true }), ...over }) as unknown as RunnableTask,
});

/** An in-memory queue behind the claim and completion statements. */
function memoryQueue(jobs: ClaimedJob[], over: Partial<Statements> = {}) {
  const queued = [...jobs];
  const completed: string[] = [];
  const released: Array<{ id: string; deadline: boolean; reason: string }> = [];
  const take = (limit: number) => queued.splice(0, limit);
  const st = statements({
    claimJobs: async (_db, o) => take(o.limit),
    completeAndClaim: async (_db, batch, o) => {
      for (const c of batch) completed.push(c.id);
      return { completed: new Set(batch.map((c) => c.id)), claimed: take(o.limit) };
    },
    completeJobs: async (_db, batch) => {
      for (const c of batch) completed.push(c.id);
      return new Set(batch.map((c) => c.id));
    },
    renewLeases: async (_db, leases) => new Set(leases.map((l) => l.id)),
    releaseJobs: async (_db, leases, reason) => {
      for (const l of leases) released.push({ id: l.id, deadline: l.deadline === true, reason });
      return new Map(leases.map((l) => [l.id, 'queued' as const]));
    },
    ...over,
  });
  return { st, completed, released };
}

const ctx = (ms: number, stopSignal?: AbortSignal) => {
  const end = Date.now() + ms;
  return { workerId: 'w1', remainingMs: () => end - Date.now(), stopSignal };
};

describe('consumer loop (no database)', () => {
  it('drains every job once, completions riding with the claims, and exits idle', async () => {
    // Prepare
    const jobs = Array.from({ length: 25 }, () => job());
    const q = memoryQueue(jobs);
    // Act
    const summary = await runConsumer(
      { db: noDb, tasks: tasks(), logger: recordingLogger(), settings, statements: q.st },
      ctx(30_000),
    );
    // Assess
    expect(summary).toMatchObject({ claimed: 25, completed: 25, exitReason: 'idle', lost: 0, failed: 0 });
    expect([...q.completed].sort()).toEqual(jobs.map((j) => j.id).sort());
    expect(new Set(q.completed).size).toBe(25);
  });

  it('does not start a task whose timeout exceeds a whole invocation: a counted deadline release', async () => {
    // Prepare
    const q = memoryQueue([job()]);
    let ran = 0;
    const long = tasks({
      timeoutSeconds: 600,
      run: async () => {
        ran++;
      },
    } as Partial<RunnableTask>);
    // Act
    const summary = await runConsumer(
      { db: noDb, tasks: long, logger: recordingLogger(), settings, statements: q.st },
      ctx(10_000),
    );
    // Assess
    expect(ran).toBe(0);
    expect(summary).toMatchObject({ released: 1, completed: 0 });
    expect(q.released).toEqual([expect.objectContaining({ deadline: true, reason: 'invocation deadline' })]);
  });

  it('stopped: the claimed jobs still waiting go back uncounted and the exit says stopped', async () => {
    // Prepare
    const stop = new AbortController();
    const q = memoryQueue(Array.from({ length: 6 }, () => job()));
    const slow = tasks({
      run: () =>
        new Promise((resolve) => {
          stop.abort();
          setTimeout(resolve, 20);
        }),
    } as Partial<RunnableTask>);
    // Act
    const summary = await runConsumer(
      {
        db: noDb,
        tasks: slow,
        logger: recordingLogger(),
        settings: { ...settings, concurrency: 1 },
        statements: q.st,
      },
      ctx(10_000, stop.signal),
    );
    // Assess
    expect(summary.exitReason).toBe('stopped');
    expect(summary.completed).toBe(1);
    expect(summary.released).toBe(5);
    expect(q.released.every((r) => !r.deadline && r.reason === 'consumer stopped')).toBe(true);
  });

  it('releases claimed jobs of a queue paused since, instead of starting them', async () => {
    // Prepare
    const q = memoryQueue([job({ queue: 'a' }), job({ queue: 'b' }), job({ queue: 'b' })], {
      pausedQueues: async () => new Set(['b']),
    });
    // Act
    const summary = await runConsumer(
      {
        db: noDb,
        tasks: tasks(),
        logger: recordingLogger(),
        settings: { ...settings, pauseCheckMs: 0 },
        statements: q.st,
      },
      ctx(10_000),
    );
    // Assess
    expect(summary).toMatchObject({ completed: 1, released: 2 });
    expect(q.released.map((r) => r.reason)).toEqual(['queue paused', 'queue paused']);
  });
});

describe('consumer loop: adaptive claim limits', () => {
  /** The limit of every claim statement the loop ran (plain claims and those carrying completions). */
  function limitRecordingQueue(jobs: ClaimedJob[]) {
    const limits: number[] = [];
    const q = memoryQueue(jobs);
    const st: Statements = {
      ...q.st,
      claimJobs: (db, o) => {
        limits.push(o.limit);
        return q.st.claimJobs(db, o);
      },
      completeAndClaim: (db, batch, o) => {
        limits.push(o.limit);
        return q.st.completeAndClaim(db, batch, o);
      },
    };
    return { st, limits, q };
  }
  const slowTask = tasks({ run: () => new Promise((r) => setTimeout(r, 20)) } as Partial<RunnableTask>);

  it('short tasks: the first claim is the initial one, later ones grow to BATCH_SIZE', async () => {
    // Prepare: tasks that take no measurable time against a one-minute target
    const { st, limits, q } = limitRecordingQueue(Array.from({ length: 300 }, () => job()));
    // Act
    const summary = await runConsumer(
      {
        db: noDb,
        tasks: tasks(),
        logger: recordingLogger(),
        settings: { ...settings, batchSize: 80, claimTargetMs: 60_000 },
        statements: st,
      },
      ctx(30_000),
    );
    // Assess
    expect(summary.completed).toBe(300);
    expect(new Set(q.completed).size).toBe(300);
    expect(limits[0]).toBe(50);
    expect(limits.slice(1)).not.toHaveLength(0);
    expect(new Set(limits.slice(1))).toEqual(new Set([80]));
  });

  it('long tasks: after the first finished, each claim asks for no more than the free slots', async () => {
    // Prepare: every task takes at least 20 ms, more than the 10 ms target: one job per free slot
    const { st, limits, q } = limitRecordingQueue(Array.from({ length: 40 }, () => job()));
    // Act
    const summary = await runConsumer(
      {
        db: noDb,
        tasks: slowTask,
        logger: recordingLogger(),
        settings: { ...settings, batchSize: 20, concurrency: 3, claimTargetMs: 10 },
        statements: st,
      },
      ctx(30_000),
    );
    // Assess
    expect(summary.completed).toBe(40);
    expect(new Set(q.completed).size).toBe(40);
    expect(limits[0]).toBe(20);
    const later = limits.slice(1);
    expect(later.length).toBeGreaterThan(3);
    for (const l of later) {
      expect(l).toBeGreaterThanOrEqual(1);
      expect(l).toBeLessThanOrEqual(3);
    }
  });

  it('adaptive claims off: every claim asks for BATCH_SIZE', async () => {
    // Prepare
    const { st, limits } = limitRecordingQueue(Array.from({ length: 40 }, () => job()));
    // Act
    const summary = await runConsumer(
      {
        db: noDb,
        tasks: slowTask,
        logger: recordingLogger(),
        settings: { ...settings, batchSize: 20, concurrency: 3, claimTargetMs: 10, adaptiveClaims: false },
        statements: st,
      },
      ctx(30_000),
    );
    // Assess
    expect(summary.completed).toBe(40);
    expect(limits.length).toBeGreaterThan(1);
    expect(new Set(limits)).toEqual(new Set([20]));
  });
});
