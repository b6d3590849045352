import { afterEach, describe, expect, it, vi } from 'vitest';
import { CompletionBatcher } from '../../functions/engine/consumer/completion-batcher.ts';
import { JobExecutor } from '../../functions/engine/consumer/executor.ts';
import { DeadlineError, type Held, TaskTimeoutError } from '../../functions/engine/consumer/held.ts';
import { LeaseKeeper } from '../../functions/engine/consumer/lease-keeper.ts';
import type { Statements } from '../../functions/engine/consumer/statements.ts';
import type { RunnableTask } from '../../functions/engine/contracts.ts';
import { LeaseLostError } from '../../functions/engine/errors.ts';
import type { Failure } from '../../functions/engine/sql/failJob.ts';
import { fakeRecorder, job, noDb, statements } from './consumer-fakes.ts';

const anyPayload = { safeParse: (v: unknown) => ({ success: true as const, data: v }) };
const task = (
  run: (payload: unknown, ctx: { signal: AbortSignal }) => Promise<unknown>,
  over = {},
): RunnableTask => ({ type: 'example.echo', schema: anyPayload, run, ...over }) as unknown as RunnableTask;

function executor(failJob?: Statements['failJob']) {
  const { recorder, logger, obs } = fakeRecorder();
  const failures: Failure[] = [];
  const st = statements({
    failJob:
      failJob ??
      (async (_db, f) => {
        failures.push(f);
        return { status: f.permanent ? 'failed' : 'queued', runAt: new Date(Date.now() + 1000), attempts: 1 };
      }),
  });
  const keeper = new LeaseKeeper({
    db: noDb,
    statements: st,
    recorder,
    logger,
    workerId: 'w1',
    leaseSeconds: 30,
    maxDeadlineReleases: 3,
    withdraw: () => false,
  });
  const batcher = new CompletionBatcher({
    db: noDb,
    statements: st,
    keeper,
    recorder,
    logger,
    maxSize: 10,
    maxAgeMs: 1000,
    refused: async () => {},
  });
  const settled: Held[] = [];
  const x = new JobExecutor({
    db: noDb,
    statements: st,
    keeper,
    batcher,
    recorder,
    logger,
    backoffBaseSeconds: 1,
    maxBackoffSeconds: 60,
    settled: (h) => settled.push(h),
  });
  return { x, keeper, batcher, recorder, obs, failures, settled, logger };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('job executor', () => {
  it('hands a storable result to the completion batcher and frees the slot', async () => {
    // Prepare
    const { x, keeper, batcher, settled, failures } = executor();
    const h = keeper.hold(job({ payload: { n: 1 } }), 1);
    // Act
    await x.execute(
      h,
      task(async (p) => p),
    );
    // Assess
    expect(batcher.size).toBe(1);
    expect(settled).toEqual([h]);
    expect(failures).toEqual([]);
    expect(keeper.get(h.job.id)).toBe(h);
  });

  it("gives the task its job's context: ids, attempt, lease token, logger, and a signal made when read", async () => {
    // Prepare
    const { x, keeper, logger } = executor();
    const h = keeper.hold(job({ queue: 'mail', attempt: 2, maxAttempts: 4 }), 1);
    let seen: Record<string, unknown> = {};
    // Act
    await x.execute(
      h,
      task(async (_p, ctx) => {
        const c = ctx as unknown as Record<string, unknown>;
        seen = {
          jobId: c.jobId,
          queue: c.queue,
          attempt: c.attempt,
          maxAttempts: c.maxAttempts,
          leaseToken: c.leaseToken,
          logger: c.logger,
          aborted: ctx.signal.aborted,
          same: ctx.signal === h.signal,
        };
      }),
    );
    // Assess
    expect(seen).toEqual({
      jobId: h.job.id,
      queue: 'mail',
      attempt: 2,
      maxAttempts: 4,
      leaseToken: h.job.leaseToken,
      logger,
      aborted: false,
      same: true,
    });
  });

  it('fails for good, without running anything, a job of an unknown type or with a payload its schema refuses', async () => {
    // Prepare
    const { x, keeper, failures, recorder } = executor();
    const refusing = {
      safeParse: () => ({
        success: false as const,
        error: { issues: [{ path: ['n'], message: 'Required' }] },
      }),
    };
    const run = vi.fn(async () => 1);
    // Act
    await x.execute(keeper.hold(job({ type: 'nope' }), 1), undefined);
    await x.execute(keeper.hold(job(), 1), task(run, { schema: refusing }));
    // Assess
    expect(run).not.toHaveBeenCalled();
    expect(failures.map((f) => [f.permanent, f.error.message])).toEqual([
      [true, 'no task registered for type "nope"'],
      [true, 'payload does not match the example.echo schema: n: Required'],
    ]);
    expect(recorder.summary.failed).toBe(2);
    expect(keeper.held.size).toBe(0);
  });

  it('records a thrown error as a retry, and a result jsonb cannot store as a failure of that job alone', async () => {
    // Prepare
    const { x, keeper, failures, recorder, batcher } = executor();
    // Act
    await x.execute(
      keeper.hold(job(), 1),
      task(async () => {
        throw new Error('flaky');
      }),
    );
    await x.execute(
      keeper.hold(job(), 1),
      task(async () => 10n),
    );
    // Assess
    expect(failures.map((f) => f.permanent)).toEqual([false, true]);
    expect(failures[0]!.error).toMatchObject({ message: 'flaky', attempt: 1, worker: 'w1' });
    expect(recorder.summary).toMatchObject({ retried: 1, failed: 1 });
    expect(batcher.size).toBe(0);
  });

  it('aborts a task past its timeoutSeconds and records the timeout as a failure', async () => {
    // Prepare
    vi.useFakeTimers();
    const { x, keeper, failures } = executor();
    const h = keeper.hold(job(), 1);
    const t = task(
      (_p, ctx) =>
        new Promise((_r, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
      {
        timeoutSeconds: 2,
      },
    );
    // Act
    const done = x.execute(h, t);
    await vi.advanceTimersByTimeAsync(2000);
    await done;
    // Assess
    expect(h.abortReason).toBeInstanceOf(TaskTimeoutError);
    expect(failures.map((f) => f.error.name)).toEqual(['TaskTimeoutError']);
  });

  it('hands a task stopped by the deadline back for release and counts a lost lease, recording no failure', async () => {
    // Prepare
    const { x, keeper, failures, recorder } = executor();
    const stops = task(
      (_p, ctx) =>
        new Promise((_r, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('stopped')))),
    );
    const a = keeper.hold(job(), 1);
    const b = keeper.hold(job(), 1);
    // Act
    const da = x.execute(a, stops);
    const db = x.execute(b, stops);
    a.abort(new DeadlineError());
    b.abort(new LeaseLostError([b.job.id]));
    await Promise.all([da, db]);
    // Assess
    expect(failures).toEqual([]);
    expect(keeper.toRelease).toEqual([a]);
    expect(a.deadline).toBe(true);
    expect(recorder.summary.lost).toBe(1);
    expect(keeper.get(b.job.id)).toBeUndefined();
  });

  it('abandons a task that ignores its abort past the grace: its lease is left to expire, nothing is recorded in the database', async () => {
    // Prepare
    vi.useFakeTimers();
    const { x, keeper, failures, recorder, settled, logger } = executor();
    const h = keeper.hold(job(), 1);
    // Act
    const done = x.execute(
      h,
      task(() => new Promise(() => {})),
    );
    h.abort(new DeadlineError());
    await vi.advanceTimersByTimeAsync(499);
    expect(settled).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await done;
    // Assess
    expect(settled).toEqual([h]);
    expect(recorder.summary.abandoned).toBe(1);
    expect(failures).toEqual([]);
    expect(keeper.get(h.job.id)).toBeUndefined();
    expect(logger.lines.at(-1)!.extra).toMatchObject({
      reason: 'invocation deadline reached before the task finished',
    });
  });

  it('frees the slot and drops the lease when recording the outcome fails', async () => {
    // Prepare
    const { x, keeper, settled, logger } = executor(() => Promise.reject(new Error('connection reset')));
    const h = keeper.hold(job(), 1);
    // Act
    await x.execute(
      h,
      task(async () => {
        throw new Error('boom');
      }),
    );
    // Assess
    expect(settled).toEqual([h]);
    expect(keeper.get(h.job.id)).toBeUndefined();
    expect(logger.lines.at(-1)!.message).toBe('could not record job outcome');
  });
});
